"""Validation of names and shapes, shared by the store, its in-memory twin and the server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from ilji.domain.errors import ValidationError
from ilji.domain.events import (
    MAX_EVENTS_PER_APPEND,
    MAX_SAFE_POSITION,
    AppendPart,
    ExpectedVersion,
    NewEvent,
    StreamState,
)

MAX_STREAM_NAME_LENGTH = 200
MAX_TYPE_LENGTH = 200
#: The most events one read returns.
MAX_READ_LIMIT = 10_000


# Whitespace (Unicode's, which `\s` matches), control characters (Cc) and lone surrogates.
_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _has_forbidden_char(text: str) -> str | None:
    match = _FORBIDDEN.search(text)
    return f"U+{ord(match.group()):04X}" if match else None


def validate_stream_name(stream: object, *, allow_system: bool = False) -> str:
    """Check a stream name: 1..200 characters, no whitespace or control characters.

    Names starting with `$` are reserved for Ilji's own streams (`$all` is the global log).
    """
    if not isinstance(stream, str):
        raise ValidationError("stream", "must be a string")
    if not stream:
        raise ValidationError("stream", "must not be empty")
    if len(stream) > MAX_STREAM_NAME_LENGTH:
        raise ValidationError(
            "stream", f"must be at most {MAX_STREAM_NAME_LENGTH} characters, got {len(stream)}"
        )
    bad = _has_forbidden_char(stream)
    if bad:
        raise ValidationError("stream", f"must not contain whitespace or control characters ({bad})")
    if stream.startswith("$") and not allow_system:
        raise ValidationError("stream", "names starting with '$' are reserved for Ilji")
    return stream


def validate_category(category: object) -> str:
    """Check a category name: a stream name without `-`."""
    name = validate_stream_name(category, allow_system=True)
    if "-" in name:
        raise ValidationError("category", "must not contain '-' (it separates category and id)")
    return name


def validate_event_type(event_type: object, field: str = "type") -> str:
    """Check an event type: 1..200 characters, no whitespace or control characters."""
    if isinstance(event_type, str) and _known_good_type(event_type):
        return event_type
    if not isinstance(event_type, str):
        raise ValidationError(field, "must be a string")
    if not event_type:
        raise ValidationError(field, "must not be empty")
    if len(event_type) > MAX_TYPE_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_TYPE_LENGTH} characters, got {len(event_type)}")
    bad = _has_forbidden_char(event_type)
    if bad:
        raise ValidationError(field, f"must not contain whitespace or control characters ({bad})")
    return event_type


@lru_cache(maxsize=4096)
def _known_good_type(event_type: str) -> bool:
    # Applications use a few hundred event types at most: remember the good ones.
    return 0 < len(event_type) <= MAX_TYPE_LENGTH and _has_forbidden_char(event_type) is None


def validate_expected_version(expected: object) -> ExpectedVersion:
    """Accept an int from 0 to MAX_SAFE_POSITION, a `StreamState`, or 'any', 'no_stream', 'exists'."""
    if isinstance(expected, StreamState):
        return expected
    if isinstance(expected, bool):
        raise ValidationError("expected_version", "must be an integer >= 0 or a stream state")
    if isinstance(expected, int):
        if expected < 0:
            raise ValidationError("expected_version", f"must be >= 0, got {expected}")
        if expected > MAX_SAFE_POSITION:
            # A version is a bigint in PostgreSQL: larger numbers would fail in the database.
            raise ValidationError("expected_version", f"must be at most {MAX_SAFE_POSITION}")
        return expected
    if isinstance(expected, str):
        try:
            return StreamState(expected)
        except ValueError:
            pass
    raise ValidationError(
        "expected_version", "must be an integer >= 0 or one of 'any', 'no_stream', 'exists'"
    )


def validate_events(events: Sequence[NewEvent]) -> None:
    """Check a batch's size, ids (unique within the batch) and each event's type and shape."""
    if type(events) not in (list, tuple) and (
        not isinstance(events, Sequence) or isinstance(events, str | bytes)
    ):
        raise ValidationError("events", "must be a list of events")
    if not events:
        raise ValidationError("events", "must contain at least one event")
    if len(events) > MAX_EVENTS_PER_APPEND:
        raise ValidationError(
            "events", f"at most {MAX_EVENTS_PER_APPEND} events per append, got {len(events)}"
        )
    seen: set[uuid.UUID] = set()
    for i, event in enumerate(events):
        if not isinstance(event, NewEvent):
            raise ValidationError(f"events[{i}]", "must be a NewEvent")
        validate_event_type(event.type, f"events[{i}].type")
        _check_object(event.data, f"events[{i}].data")
        _check_object(event.metadata, f"events[{i}].metadata")
        if not isinstance(event.id, uuid.UUID):
            raise ValidationError(f"events[{i}].id", "must be a UUID")
        if event.id in seen:
            raise ValidationError(f"events[{i}].id", f"{event.id} appears twice in the batch")
        seen.add(event.id)


def _check_object(value: Any, field: str) -> None:
    # Keys and values are checked when the object is encoded (ilji.store.encoding).
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a JSON object, got {type(value).__name__}")


def validate_limit(limit: object) -> int:
    """Check a read's page size: an integer from 1 to MAX_READ_LIMIT."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_READ_LIMIT:
        raise ValidationError("limit", f"must be an integer from 1 to {MAX_READ_LIMIT}")
    return limit


def validate_after(after: object, field: str = "after") -> int:
    """Check a global-log position to read after: an integer >= 0 (0 reads from the start)."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValidationError(field, "must be an integer >= 0")
    return after


def validate_from_version(from_version: object) -> int | None:
    """Check a stream read's first version: None (the default end) or an integer >= 0."""
    if from_version is None:
        return None
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 0:
        raise ValidationError("from_version", "must be an integer >= 0")
    return from_version


def validate_parts(parts: Sequence[Any]) -> list[AppendPart]:
    """Check a multi-stream append's parts; errors name the part (`parts[1].events[0].type`).

    Each part is `(stream, events)` or `(stream, events, expected_version)`. A stream may
    appear in one part only (two parts of one stream would make the second's expectation
    depend on the first: send one part with all its events instead). The whole call shares
    one transaction's positions: its events plus one unused position between parts (the
    group statement's separator, `append_group.sql`) fit in `MAX_EVENTS_PER_APPEND`.
    """
    if type(parts) not in (list, tuple) and (
        not isinstance(parts, Sequence) or isinstance(parts, str | bytes)
    ):
        raise ValidationError("parts", "must be a list of (stream, events, expected_version) parts")
    if not parts:
        raise ValidationError("parts", "must contain at least one part")
    checked: list[AppendPart] = []
    first_of: dict[str, int] = {}
    seen_ids: dict[uuid.UUID, int] = {}
    used = -1  # the first part needs no separator before it
    for k, raw in enumerate(parts):
        if not isinstance(raw, tuple) or len(raw) not in (2, 3):
            raise ValidationError(f"parts[{k}]", "must be a (stream, events, expected_version) tuple")
        stream, events = raw[0], raw[1]
        expected = raw[2] if len(raw) == 3 else StreamState.ANY
        try:
            validate_stream_name(stream)
            expected = validate_expected_version(expected)
            validate_events(events)
        except ValidationError as exc:
            raise in_part(exc, k) from None
        if stream in first_of:
            raise ValidationError(
                f"parts[{k}].stream",
                f"stream {stream!r} is in parts[{first_of[stream]}] already: put all its events in one part",
            )
        first_of[stream] = k
        for i, event in enumerate(events):
            if event.id in seen_ids:
                raise ValidationError(
                    f"parts[{k}].events[{i}].id", f"{event.id} appears in parts[{seen_ids[event.id]}] too"
                )
            seen_ids[event.id] = k
        used += len(events) + 1
        if used > MAX_EVENTS_PER_APPEND:
            raise ValidationError(
                "parts",
                f"at most {MAX_EVENTS_PER_APPEND} positions per call (events plus one between parts); "
                f"parts[0..{k}] need {used}",
            )
        checked.append(AppendPart(stream, events, expected))
    return checked


def in_part(exc: ValidationError, part: int) -> ValidationError:
    """The same error, its field prefixed with the part it is in."""
    message = exc.message.removeprefix(f"{exc.field}: ")
    return ValidationError(f"parts[{part}].{exc.field}", message)


#: Why a multi-stream append that reuses stored ids is refused (`DuplicateEventId`).
REUSED_BY_ANOTHER_CALL = "they were stored by another call"
REUSED_IN_PART = "other parts of this call are not stored: only an exact resend of the whole call is allowed"
