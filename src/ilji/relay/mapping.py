"""Integration events: the public, versioned contract that the relay publishes.

Domain events are a service's own business: it renames fields, splits events and upcasts old
versions whenever its model changes. Other services must not depend on that, so nothing is
published unless a mapping says which internal event becomes which public event:

    integration = IntegrationEvents("conference_relay", subject_prefix="ilji")

    @integration.map("SeatsReserved", to="SeatsReserved", version=1, personal=["attendee_email"])
    def seats_reserved(event: RecordedEvent) -> dict[str, Any] | None:
        return {"conference": event.stream, "seats": event.data["quantity"]}

The function may rename, reshape or drop fields, or return `None` to publish nothing for this
event. Whatever it returns, the fields named in `personal` (dotted paths into the result) are
removed before publishing, and so is every crypto-shredding envelope (`{"$personal": ...}`,
see `ilji.app.personal`): the relay reads events as stored and never decrypts, so personal
data never reaches the broker in clear. Events of types without a mapping are not even read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from ilji.app.personal import ENVELOPE_KEY
from ilji.domain.events import RecordedEvent
from ilji.relay.errors import MappingError

MappingFunction = Callable[[RecordedEvent], "dict[str, Any] | None"]
"""Turns one internal event into the payload of its public event (None: publish nothing)."""

F = TypeVar("F", bound=MappingFunction)

# One NATS subject token: no dots (token separator), wildcards or whitespace.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64})*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: Headers every message carries (besides `Nats-Msg-Id`), for consumers and for audits.
HEADER_EVENT = "Ilji-Event"
HEADER_STREAM = "Ilji-Stream"
HEADER_STREAM_VERSION = "Ilji-Stream-Version"
HEADER_POSITION = "Ilji-Position"
HEADER_RECORDED_AT = "Ilji-Recorded-At"
HEADER_CAUSATION = "Ilji-Causation-Id"
HEADER_CORRELATION = "Ilji-Correlation-Id"
#: JetStream drops a message whose id it stored within its duplicate window.
HEADER_MSG_ID = "Nats-Msg-Id"


@dataclass(frozen=True, slots=True)
class Mapping:
    """One declared mapping: internal type (of a category, or any) → public name and version."""

    source: str
    name: str
    version: int
    function: MappingFunction
    personal: tuple[str, ...]
    category: str | None

    @property
    def public(self) -> str:
        """`SeatsReserved.v1`: the public event's name and version, as consumers see them."""
        return f"{self.name}.v{self.version}"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message ready for JetStream: subject, JSON payload and headers."""

    event_id: uuid.UUID
    stream: str
    position: int
    recorded_at: float  # Unix time, for the append-to-acknowledgement latency
    subject: str
    payload: bytes
    headers: dict[str, str]


class IntegrationEvents:
    """The mappings of one relay: which internal events become which public ones.

    `name` is the relay's name in the database (its checkpoints, leases and parked events are
    those of a projection of that name); `subject_prefix` starts every subject
    (`<prefix>.<category>.<PublicName>.v<N>`); `categories`, when given, limits the relay to
    streams of those categories. `partitions` splits the work by stream over that many leases
    (each stream stays in one partition, so its order is kept).
    """

    def __init__(
        self,
        name: str = "relay",
        *,
        subject_prefix: str = "ilji",
        categories: Sequence[str] | None = None,
        partitions: int = 1,
        batch_size: int = 200,
    ) -> None:
        if not _NAME.match(name):
            raise MappingError(f"relay name {name!r}: use [a-z][a-z0-9_]*, at most 63 characters")
        if not _PREFIX.match(subject_prefix):
            raise MappingError(f"subject prefix {subject_prefix!r}: use dot-separated [A-Za-z0-9_-] tokens")
        if isinstance(categories, str):
            raise MappingError("categories: a sequence of category names, not one string")
        for category in categories or ():
            if not _TOKEN.match(category):
                raise MappingError(f"category {category!r} cannot be a subject token")
        self.name = name
        self.subject_prefix = subject_prefix
        self.categories = tuple(categories) if categories is not None else None
        self.partitions = partitions
        self.batch_size = batch_size
        self._mappings: dict[tuple[str | None, str], Mapping] = {}

    def map(
        self,
        source: str,
        *,
        to: str,
        version: int = 1,
        personal: Sequence[str] = (),
        category: str | None = None,
    ) -> Callable[[F], F]:
        """Declare that events of type `source` (in `category`, or any) become `to`.v`version`."""
        if not _TOKEN.match(to):
            raise MappingError(f"public name {to!r} cannot be a subject token")
        if version < 1:
            raise MappingError(f"{to}: version must be >= 1")
        if isinstance(personal, str):
            raise MappingError(f"{to}: personal is a sequence of field paths, not one string")
        if category is not None and not _TOKEN.match(category):
            raise MappingError(f"category {category!r} cannot be a subject token")
        key = (category, source)
        if key in self._mappings:
            where = f" in category {category!r}" if category else ""
            raise MappingError(f"{source!r} is mapped twice{where}")

        def register(function: F) -> F:
            self._mappings[key] = Mapping(source, to, version, function, tuple(personal), category)
            return function

        return register

    @property
    def mappings(self) -> list[Mapping]:
        """Every declared mapping."""
        return list(self._mappings.values())

    @property
    def source_types(self) -> list[str]:
        """The internal event types the relay reads (all others are skipped by the query)."""
        return sorted({m.source for m in self._mappings.values()})

    def mapping_for(self, event: RecordedEvent) -> Mapping | None:
        """The mapping that applies to `event` (its category's first, then the general one)."""
        category = event.category
        if self.categories is not None and category not in self.categories:
            return None
        return self._mappings.get((category, event.type)) or self._mappings.get((None, event.type))

    def to_message(self, event: RecordedEvent) -> OutgoingMessage | None:
        """The message to publish for `event`, or None when nothing is to be published.

        Raises `MappingError` when the function fails or returns something other than a
        JSON object (the relay then treats the event as poison: retried, then parked).
        """
        mapping = self.mapping_for(event)
        if mapping is None:
            return None
        try:
            payload = mapping.function(event)
        except Exception as exc:
            raise MappingError(f"mapping {mapping.public} failed: {type(exc).__name__}: {exc}") from exc
        if payload is None:
            return None
        if not isinstance(payload, dict):
            raise MappingError(f"mapping {mapping.public} returned {type(payload).__name__}, not a dict")
        payload = without_personal(payload, mapping.personal)
        category = mapping.category or event.category
        if not _TOKEN.match(category):
            raise MappingError(f"stream {event.stream!r}: category {category!r} cannot be a subject token")
        try:
            body = orjson.dumps(payload)
        except TypeError as exc:
            raise MappingError(f"mapping {mapping.public} returned data that is not JSON: {exc}") from exc
        return OutgoingMessage(
            event_id=event.id,
            stream=event.stream,
            position=event.position,
            recorded_at=event.recorded_at.timestamp(),
            subject=f"{self.subject_prefix}.{category}.{mapping.name}.v{mapping.version}",
            payload=body,
            headers=headers_of(event, mapping),
        )


def headers_of(event: RecordedEvent, mapping: Mapping) -> dict[str, str]:
    """The message headers: ids and places, never data (metadata may hold anything)."""
    headers = {
        HEADER_MSG_ID: str(event.id),
        HEADER_EVENT: mapping.public,
        HEADER_STREAM: event.stream,
        HEADER_STREAM_VERSION: str(event.version),
        HEADER_POSITION: str(event.position),
        HEADER_RECORDED_AT: event.recorded_at.isoformat(),
    }
    for key, header in (("causation_id", HEADER_CAUSATION), ("correlation_id", HEADER_CORRELATION)):
        value = event.metadata.get(key)
        if value:
            headers[header] = str(value)
    return headers


def without_personal(payload: dict[str, Any], personal: Sequence[str]) -> dict[str, Any]:
    """A copy of `payload` without the `personal` paths and without any encrypted envelope.

    Dropping rather than masking: a masked or hashed e-mail address can still be guessed,
    and a consumer that needs to tell people apart should get an opaque id instead.
    """
    cleaned = _strip_envelopes(payload)
    assert isinstance(cleaned, dict)
    for path in personal:
        *parents, leaf = path.split(".")
        node: Any = cleaned
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return cleaned


def _strip_envelopes(value: Any) -> Any:
    """Deep copy of JSON-like `value`, leaving out every `{"$personal": ...}` envelope."""
    if isinstance(value, dict):
        return {k: _strip_envelopes(v) for k, v in value.items() if not _is_envelope(v)}
    if isinstance(value, list | tuple):
        return [_strip_envelopes(v) for v in value if not _is_envelope(v)]
    return value


def _is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and ENVELOPE_KEY in value
