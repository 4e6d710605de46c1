"""Snapshot storage: the `SnapshotStore` port, its PostgreSQL implementation and in-memory twin.

A snapshot is a cache. It is stored with the stream versions it was folded from (the first
and the last), the id of the event at the last one and the schema version of the state's
shape; the reader asks only for its own schema version, checks the event id and that the
stream's first visible version is still the first one folded (lifecycle rules hide a prefix
of a stream, and may show it again), so a stale or foreign snapshot is never used. Deleting
snapshots is always safe.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import orjson

from ilji.domain.errors import ValidationError
from ilji.domain.events import MAX_SAFE_POSITION
from ilji.domain.validation import validate_stream_name
from ilji.store import sql
from ilji.store.database import Database
from ilji.store.encoding import decode, encode_object

_SAVE = sql.load("snapshot_save")
_LATEST = sql.load("snapshot_latest")
_DELETE = sql.load("snapshot_delete")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of `stream` after its event `version` (whose id is `event_id`), as JSON.

    `first_version` is the first event folded into it: the stream's first visible version
    when it was folded (versions below it were hidden by a lifecycle rule, or never existed).
    """

    stream: str
    state_type: str
    schema_version: int
    version: int
    event_id: uuid.UUID
    state: Mapping[str, Any]
    taken_at: datetime | None = field(default=None, compare=False)
    first_version: int = 1


@runtime_checkable
class SnapshotStore(Protocol):
    """Where snapshots are kept."""

    async def save(self, snapshot: Snapshot) -> None:
        """Store `snapshot`, replacing one of the same stream, type, schema and version.

        Every field must come back from `latest` as saved, `first_version` included: the
        loader trusts a snapshot only while it matches the stream's first visible version.
        """
        ...

    async def latest(
        self, stream: str, state_type: str, schema_version: int, max_version: int | None = None
    ) -> Snapshot | None:
        """The newest snapshot with this type and schema version at or below `max_version`."""
        ...

    async def delete(self, stream: str | None = None, state_type: str | None = None) -> int:
        """Delete matching snapshots (all by default); returns how many."""
        ...


def _check(snapshot: Snapshot) -> None:
    validate_stream_name(snapshot.stream)
    if snapshot.version < 1:
        raise ValidationError("version", "a snapshot covers at least one event")
    if not 1 <= snapshot.first_version <= snapshot.version:
        raise ValidationError("first_version", "must be from 1 to the snapshot's version")
    if snapshot.schema_version < 1:
        raise ValidationError("schema_version", "must be >= 1")
    if not snapshot.state_type:
        raise ValidationError("state_type", "must not be empty")


class PostgresSnapshotStore:
    """Snapshots in the `ilji.snapshots` table, on the event store's database (`store.database`)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def save(self, snapshot: Snapshot) -> None:
        """Insert or replace the snapshot."""
        _check(snapshot)
        params = {
            "stream": snapshot.stream,
            "state_type": snapshot.state_type,
            "schema_version": snapshot.schema_version,
            "version": snapshot.version,
            "event_id": snapshot.event_id,
            "state": encode_object(snapshot.state, "state"),
            "first_version": snapshot.first_version,
        }
        async with self.database.connection() as conn:
            await conn.execute(_SAVE, params)

    async def latest(
        self, stream: str, state_type: str, schema_version: int, max_version: int | None = None
    ) -> Snapshot | None:
        """The newest matching snapshot, or None."""
        params = {
            "stream": stream,
            "state_type": state_type,
            "schema_version": schema_version,
            "max_version": MAX_SAFE_POSITION if max_version is None else max_version,
        }
        async with self.database.connection() as conn:
            cur = await conn.execute(_LATEST, params)
            row = await cur.fetchone()
        if row is None:
            return None
        return Snapshot(row[0], row[1], row[2], row[3], row[4], orjson.loads(row[5]), row[6], row[7])

    async def delete(self, stream: str | None = None, state_type: str | None = None) -> int:
        """Delete matching snapshots."""
        async with self.database.connection() as conn:
            cur = await conn.execute(_DELETE, {"stream": stream, "state_type": state_type})
            return cur.rowcount


class MemorySnapshotStore:
    """The in-memory twin of `PostgresSnapshotStore`, for unit tests."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, int, int], Snapshot] = {}

    async def save(self, snapshot: Snapshot) -> None:
        """Insert or replace the snapshot (its state is copied through JSON, as PostgreSQL would)."""
        _check(snapshot)
        state = decode(encode_object(snapshot.state, "state"))
        key = (snapshot.stream, snapshot.state_type, snapshot.schema_version, snapshot.version)
        self._rows[key] = Snapshot(
            snapshot.stream,
            snapshot.state_type,
            snapshot.schema_version,
            snapshot.version,
            snapshot.event_id,
            state,
            datetime.now(UTC),
            snapshot.first_version,
        )

    async def latest(
        self, stream: str, state_type: str, schema_version: int, max_version: int | None = None
    ) -> Snapshot | None:
        """The newest matching snapshot, or None."""
        limit = MAX_SAFE_POSITION if max_version is None else max_version
        found = [
            s
            for (st, ty, sv, v), s in self._rows.items()
            if st == stream and ty == state_type and sv == schema_version and v <= limit
        ]
        return max(found, key=lambda s: s.version, default=None)

    async def delete(self, stream: str | None = None, state_type: str | None = None) -> int:
        """Delete matching snapshots."""
        doomed = [
            key
            for key in self._rows
            if (stream is None or key[0] == stream) and (state_type is None or key[1] == state_type)
        ]
        for key in doomed:
            del self._rows[key]
        return len(doomed)

    def __len__(self) -> int:
        return len(self._rows)
