"""Turning event bodies into JSON for PostgreSQL, with the checks that JSON alone does not make."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ilji.domain.errors import ValidationError
from ilji.domain.events import NewEvent

DEFAULT_MAX_EVENT_SIZE = 1024 * 1024

# PostgreSQL's jsonb cannot hold U+0000; an escaped NUL is a backslash-u-0000 that is not
# itself preceded by an escaping backslash.
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _reject_non_finite(value: Any, field: str) -> None:
    # orjson writes NaN and infinities as null, which would silently change the data.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(field, "numbers must be finite (no NaN or Infinity)")
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def encode_object(value: Mapping[str, Any], field: str) -> str:
    """Serialise a JSON object, naming `field` in the error when it cannot be stored."""
    if not value:
        return "{}"
    try:
        encoded = orjson.dumps(value if type(value) is dict else dict(value))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ValidationError(field, f"is not JSON-serialisable: {exc}") from None
    if b"null" in encoded:
        _reject_non_finite(value, field)
    if b"\\u0000" in encoded and _ESCAPED_NUL.search(encoded):
        raise ValidationError(field, "strings must not contain the NUL character (U+0000)")
    return encoded.decode()


def check_size(size: int, index: int, limit: int) -> None:
    """Refuse an event whose encoded data, metadata and type exceed `limit` bytes."""
    if size > limit:
        raise ValidationError(f"events[{index}]", f"is {size} bytes encoded, over the limit of {limit} bytes")


def encode_event(event: NewEvent, index: int, limit: int) -> tuple[str, str]:
    """The data and metadata of `events[index]` as JSON, refused over `limit` bytes in all."""
    data = encode_object(event.data, f"events[{index}].data")
    metadata = encode_object(event.metadata, f"events[{index}].metadata")
    check_size(len(data) + len(metadata) + len(event.type), index, limit)
    return data, metadata


def decode(raw: str | bytes) -> Any:
    """Parse JSON text from the database."""
    return orjson.loads(raw)
