"""One JSON shape per concept: how Ilji's dataclasses become JSON, written once.

The HTTP API, the CLI's `--json` output and the console all serialise the same dataclasses
(projection status, parked events, stream summaries, stream lifecycle) through `to_json`, so
a field has one name and one format everywhere. Times are UTC, ISO 8601 with a `Z`.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ilji.domain.events import RecordedEvent


def utc_text(value: datetime) -> str:
    """`2026-12-07T13:43:26.123456Z`: an aware time in UTC, the one format Ilji prints."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_json(event: RecordedEvent) -> dict[str, Any]:
    """A recorded event as JSON: the object the HTTP API and `ilji read --json` show for it."""
    return {
        "id": str(event.id),
        "stream": event.stream,
        "version": event.version,
        "position": event.position,
        "type": event.type,
        "data": event.data,
        "metadata": event.metadata,
        "recorded_at": utc_text(event.recorded_at),
    }


def to_json(value: Any) -> Any:
    """`value` as JSON-ready Python: dataclasses become objects (fields in order), times
    `utc_text`, enums their value, UUIDs text; lists, tuples and mappings are walked."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    return value
