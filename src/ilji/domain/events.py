"""Events as the store sees them: what a caller appends, and what a reader gets back."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

#: Positions are computed from a transaction id shifted left by this many bits plus the
#: event's index in its batch (see docs/en/architecture.md), so one append holds at most
#: 2**POSITION_SHIFT events.
POSITION_SHIFT = 12
MAX_EVENTS_PER_APPEND = 1 << POSITION_SHIFT

#: The largest position a JavaScript number still represents exactly.
MAX_SAFE_POSITION = 2**53 - 1


class StreamState(enum.Enum):
    """Expected-version conditions that are not an exact version."""

    ANY = "any"
    """Append whatever the stream's version is."""
    NO_STREAM = "no_stream"
    """Append only if the stream has no events (the same as expecting version 0)."""
    EXISTS = "exists"
    """Append only if the stream has at least one event."""

    def __str__(self) -> str:
        return self.value


ANY = StreamState.ANY
NO_STREAM = StreamState.NO_STREAM
EXISTS = StreamState.EXISTS

ExpectedVersion: TypeAlias = int | StreamState
"""An exact version (the stream's number of events; 0 means no events) or a `StreamState`."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. `id` defaults to a fresh UUID; reuse an id to make a retry idempotent."""

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its place in its stream (`version`) and in the global log (`position`)."""

    id: uuid.UUID
    stream: str
    version: int
    position: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def category(self) -> str:
        """The part of the stream name before the first `-`."""
        return category_of(self.stream)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an appended batch landed. `idempotent` is true when it was an exact retry."""

    stream: str
    first_version: int
    last_version: int
    first_position: int
    last_position: int
    idempotent: bool = False


def category_of(stream: str) -> str:
    """A stream's category: the part of its name before the first `-` (`order-12-a` → `order`)."""
    return stream.split("-", 1)[0]
