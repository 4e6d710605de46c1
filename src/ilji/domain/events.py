"""Events as the store sees them: what a caller appends, and what a reader gets back."""

from __future__ import annotations

import enum
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeAlias

#: Positions are computed from a transaction id shifted left by this many bits plus the
#: event's index in its batch (see docs/en/architecture.md), so one append holds at most
#: 2**POSITION_SHIFT events.
POSITION_SHIFT = 12
MAX_EVENTS_PER_APPEND = 1 << POSITION_SHIFT

#: The largest position a JavaScript number still represents exactly.
MAX_SAFE_POSITION = 2**53 - 1

#: Transaction ids from this one on would make positions past MAX_SAFE_POSITION: appends
#: fail from then on (`PositionLimitReached`). PostgreSQL's 64-bit transaction ids (with
#: their epoch) only grow, so this is a bound on how many writing transactions a cluster
#: can ever run for Ilji: 2**41, about 70 years at 1,000 per second.
TRANSACTION_ID_LIMIT = (MAX_SAFE_POSITION + 1) >> POSITION_SHIFT

#: `ilji info` and the server warn when fewer transaction ids than this are left (a tenth).
TRANSACTION_IDS_WARNING = TRANSACTION_ID_LIMIT // 10


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
    id: uuid.UUID = field(default_factory=lambda: new_event_id())


class RecordedEvent:
    """An event as stored: its place in its stream (`version`) and in the global log (`position`).

    Readers often skip most events by type, so `data` and `metadata` may be given as JSON
    text, which is parsed on first access (a JSON object never parses to a string, so a
    string in those slots always means "not parsed yet"). Likewise a store may give `id` as
    the UUID's 16 bytes and `recorded_at` as PostgreSQL's 8-byte binary timestamp, each made
    a Python object on first access: a page of the log then costs one object per event for
    the garbage collector to walk, not two, and no time is spent on fields a reader skips.
    Treat instances as immutable.
    """

    __slots__ = ("_data", "_id", "_metadata", "_recorded_at", "position", "stream", "type", "version")

    @staticmethod
    def _decode(text: str) -> Any:
        """Parse JSON text; stores may override this with a faster parser in a subclass."""
        return json.loads(text)

    def __init__(
        self,
        id: uuid.UUID | bytes,
        stream: str,
        version: int,
        position: int,
        type: str,
        data: dict[str, Any] | str,
        metadata: dict[str, Any] | str,
        recorded_at: datetime | bytes,
    ) -> None:
        self._id = id
        self.stream = stream
        self.version = version
        self.position = position
        self.type = type
        self._data = data
        self._metadata = metadata
        self._recorded_at = recorded_at

    @property
    def id(self) -> uuid.UUID:
        """The event's id."""
        value = self._id
        if type(value) is bytes:
            value = self._id = uuid_from_bytes(value)
        return value  # type: ignore[return-value]

    @property
    def recorded_at(self) -> datetime:
        """When the event was stored (UTC)."""
        value = self._recorded_at
        if type(value) is bytes:
            value = self._recorded_at = datetime_from_bytes(value)
        return value  # type: ignore[return-value]

    @property
    def data(self) -> dict[str, Any]:
        """The event's data (a JSON object)."""
        value = self._data
        if type(value) is str:
            value = self._data = self._decode(value)
        return value  # type: ignore[return-value]

    @property
    def metadata(self) -> dict[str, Any]:
        """The event's metadata (a JSON object: correlation and causation ids, and more)."""
        value = self._metadata
        if type(value) is str:
            value = self._metadata = self._decode(value)
        return value  # type: ignore[return-value]

    @property
    def category(self) -> str:
        """The part of the stream name before the first `-`."""
        return category_of(self.stream)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.stream,
            self.version,
            self.position,
            self.type,
            self.data,
            self.metadata,
            self.recorded_at,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordedEvent):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.id, self.position))

    def __repr__(self) -> str:
        return (
            f"RecordedEvent(stream={self.stream!r}, version={self.version}, "
            f"position={self.position}, type={self.type!r}, id={self.id})"
        )


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an appended batch landed. `idempotent` is true when it was an exact retry."""

    stream: str
    first_version: int
    last_version: int
    first_position: int
    last_position: int
    idempotent: bool = False


class AppendPart(NamedTuple):
    """One part of a multi-stream append (`append_streams`): a stream, its events and the
    version the stream must be at. A plain `(stream, events, expected_version)` tuple works too."""

    stream: str
    events: Sequence[NewEvent]
    expected_version: ExpectedVersion = StreamState.ANY


def expected_version_holds(expected: ExpectedVersion, version: int) -> bool:
    """Whether a stream at `version` (its number of events) meets the `expected` condition."""
    if expected is StreamState.ANY:
        return True
    if expected is StreamState.EXISTS:
        return version > 0
    if expected is StreamState.NO_STREAM:
        return version == 0
    return expected == version


def category_of(stream: str) -> str:
    """A stream's category: the part of its name before the first `-` (`order-12-a` → `order`)."""
    return stream.split("-", 1)[0]


def uuid_from_bytes(value: bytes) -> uuid.UUID:
    """`uuid.UUID(bytes=value)` in half the time, for ids read from the store.

    It sets the two attributes `uuid.UUID.__init__` ends by setting, without the argument
    checks that a 16-byte value from PostgreSQL's `uuid_send` does not need.
    """
    if len(value) != 16:
        raise ValueError(f"a UUID has 16 bytes, not {len(value)}")
    return _uuid_from_int(int.from_bytes(value))


def _uuid_from_int(
    value: int,
    _new: Any = object.__new__,
    _set: Any = object.__setattr__,
    _unknown: uuid.SafeUUID = uuid.SafeUUID.unknown,
) -> uuid.UUID:
    # `uuid.UUID(int=value)` for a value known to fit 128 bits: what its __init__ ends with.
    result: uuid.UUID = _new(uuid.UUID)
    _set(result, "int", value)
    _set(result, "is_safe", _unknown)
    return result


#: PostgreSQL's binary timestamps count microseconds from here.
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def datetime_from_bytes(value: bytes) -> datetime:
    """A `timestamptz` in PostgreSQL's binary form (`timestamptz_send`: microseconds since
    2000-01-01 UTC, 8 bytes, big-endian, signed) as an aware UTC datetime."""
    if len(value) != 8:
        raise ValueError(f"a binary timestamp has 8 bytes, not {len(value)}")
    return _POSTGRES_EPOCH + timedelta(0, 0, int.from_bytes(value, signed=True))


def new_event_id() -> uuid.UUID:
    """A time-ordered UUID (version 7 layout): 48 bits of Unix milliseconds, then random bits.

    Ids that grow with time keep the unique index on event ids compact and cache-friendly,
    where random (version 4) ids would touch a random index page on every append.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return _uuid_from_int(value)
