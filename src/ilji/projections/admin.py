"""Operating projections from outside a worker: status, pause/resume, rebuild, parked events, waits.

Everything here works on the database alone (no projection code needed), so the HTTP server and
the CLI can call it: `status`, `pause`, `resume`, `request_rebuild`, `list_parked`,
`replay_parked`, `wait_for_position` and `rebuild_progress`. Results are plain dataclasses;
the server turns them into JSON and Prometheus metrics.

The actions (pause, resume, rebuild, replay) are audited: each one appends an event to
`$audit` in the transaction that makes the change (see `ilji.store.audit`); `actor` says who
acts (the server passes the token's role and fingerprint, the CLI the OS user).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ilji.projections import sql
from ilji.projections.errors import ProjectionNotFound, WaitTimeout
from ilji.store import sql as store_sql
from ilji.store.audit import Actor, AdminResult
from ilji.store.database import Connection
from ilji.store.postgres import PostgresEventStore

_STATUS = sql.load("status")
# The store's query: it knows what a reader of the log may see (hidden events, $ streams).
_LAG = store_sql.load("backlog")
_REACHED = sql.load("reached")
_PAUSE = sql.load("pause")
_RESUME_FAILED = sql.load("resume_failed")
_REQUEST_REBUILD = sql.load("request_rebuild")
_LIST_PARKED = sql.load("list_parked")
_REQUEST_REPLAY = sql.load("request_replay")
_PROJECTION_ROW = sql.load("projection_row")
_PROJECTION_DECLARED = sql.load("projection_declared")
_WORKERS = sql.load("workers")

#: Lag in events is counted up to this many (a bounded index scan); beyond, it says "at least".
LAG_COUNT_CAP = 100_000

State = Literal["running", "catching_up", "stopped", "paused", "failed", "retired"]
"""What a partition (or a whole projection) is doing."""

_SEVERITY: dict[str, int] = {
    "running": 0,
    "catching_up": 1,
    "stopped": 2,
    "paused": 3,
    "failed": 4,
    "retired": -1,
}


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """One partition of one version of a projection, as the database sees it."""

    projection: str
    version: int
    partition: int
    partitions: int
    active: bool
    state: State
    checkpoint: int
    head: int
    events_behind: int
    events_behind_capped: bool
    lag_seconds: float
    events_per_second: float
    events_applied: int
    owner: str | None
    fencing_token: int
    lease_expires_at: datetime | None
    parked: int
    error: str | None
    updated_at: datetime

    @property
    def positions_behind(self) -> int:
        """Head position minus checkpoint (positions are sparse: see `events_behind`)."""
        return max(self.head - self.checkpoint, 0)


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A worker running a projection (heartbeat in the last minute), as it reported itself."""

    worker: str
    #: The `version` of the projection code this worker has.
    code_version: int | None
    #: The versions it runs (see `ilji.projections.versions`).
    versions: list[int]
    #: serving, building, idle (its code is older than the serving version's) or refused.
    state: str | None
    #: Why it refuses a version (say, another partition count for an existing version).
    error: str | None
    heartbeat_at: datetime


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """A projection: its serving version's partitions, those of a rebuild in progress, and
    (with `all_versions`) those of versions a rebuild replaced."""

    name: str
    active_version: int
    requested_version: int | None
    paused: bool
    category: str | None
    types: list[str] | None
    partitions: list[PartitionStatus] = field(default_factory=list)
    rebuilding: list[PartitionStatus] = field(default_factory=list)
    retired: list[PartitionStatus] = field(default_factory=list)
    workers: list[WorkerStatus] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """What workers refuse to run (deploy mistakes to fix), each once."""
        return sorted({w.error for w in self.workers if w.error})

    @property
    def state(self) -> State:
        """The worst state among the serving partitions."""
        if self.paused:
            return "paused"
        states = [p.state for p in self.partitions] or ["stopped"]
        return max(states, key=lambda s: _SEVERITY[s])

    @property
    def checkpoint(self) -> int:
        """The lowest checkpoint of the serving partitions."""
        return min((p.checkpoint for p in self.partitions), default=0)

    @property
    def events_behind(self) -> int:
        """The most events any serving partition still has to read."""
        return max((p.events_behind for p in self.partitions), default=0)

    @property
    def lag_seconds(self) -> float:
        """Age of the oldest event a serving partition has not dealt with (0 when caught up)."""
        return max((p.lag_seconds for p in self.partitions), default=0.0)

    @property
    def events_per_second(self) -> float:
        """Recent apply rate, summed over the serving partitions."""
        return sum(p.events_per_second for p in self.partitions)

    @property
    def parked(self) -> int:
        """Parked events not replayed yet (serving version)."""
        return sum(p.parked for p in self.partitions)

    @property
    def owners(self) -> list[str]:
        """Workers holding a live lease on a serving partition."""
        return sorted({p.owner for p in self.partitions if p.owner and p.state != "stopped"})


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """An event a projection gave up on."""

    projection: str
    version: int
    partition: int
    position: int
    event_id: uuid.UUID
    stream: str
    type: str
    error: str
    attempts: int
    parked_at: datetime
    replay_requested_at: datetime | None
    replayed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RebuildProgress:
    """Where a rebuild stands (for a progress bar)."""

    projection: str
    version: int
    done: bool
    events_behind: int
    events_applied: int
    events_per_second: float
    eta_seconds: float | None


def _partition_state(status: str, paused: bool, lease_live: bool) -> State:
    if status in ("failed", "retired"):
        return status  # type: ignore[return-value]
    if paused:
        return "paused"
    if not lease_live:
        return "stopped"
    return "running" if status == "running" else "catching_up"


async def status(
    store: PostgresEventStore, name: str | None = None, *, all_versions: bool = False
) -> list[ProjectionStatus]:
    """Every projection (or one), with lag per partition. Raises `ProjectionNotFound` for a bad name."""
    async with store.database.connection() as conn:
        cur = await conn.execute(_STATUS, {"name": name, "all_versions": all_versions})
        rows = await cur.fetchall()
        result: dict[str, ProjectionStatus] = {}
        for row in rows:
            (
                projection,
                version,
                partition,
                partitions,
                active_version,
                position,
                owner,
                token,
                expires,
                lease_live,
                row_status,
                paused,
                error,
                applied,
                rate,
                updated_at,
                parked,
                category,
                types,
                requested,
            ) = row
            cur = await conn.execute(
                _LAG,
                {"after": position, "category": category, "types": types, "cap": LAG_COUNT_CAP},
            )
            lag = await cur.fetchone()
            assert lag is not None
            behind, lag_seconds, head = lag
            state = _partition_state(row_status, paused, lease_live)
            item = PartitionStatus(
                projection=projection,
                version=version,
                partition=partition,
                partitions=partitions,
                active=version == active_version,
                state=state,
                checkpoint=position,
                head=max(head, position),
                events_behind=behind,
                events_behind_capped=behind >= LAG_COUNT_CAP,
                lag_seconds=float(lag_seconds or 0.0),
                events_per_second=float(rate) if state in ("running", "catching_up") else 0.0,
                events_applied=applied,
                owner=owner,
                fencing_token=token,
                lease_expires_at=expires,
                parked=parked,
                error=error,
                updated_at=updated_at,
            )
            entry = result.get(projection)
            if entry is None:
                entry = result[projection] = ProjectionStatus(
                    name=projection,
                    active_version=active_version,
                    requested_version=requested,
                    paused=paused,
                    category=category,
                    types=types,
                )
            if version == active_version:
                entry.partitions.append(item)
            elif version > active_version:
                entry.rebuilding.append(item)
            else:
                entry.retired.append(item)
        cur = await conn.execute(_WORKERS, {"name": name})
        workers = await cur.fetchall()
    if name is not None and not result:
        # Registered, but no worker has set up its partitions yet: a projection with none.
        result[name] = await _declared(store, name)
    for projection, *fields in workers:
        if projection in result:
            worker, code_version, versions, state, error, heartbeat_at = fields
            result[projection].workers.append(
                WorkerStatus(worker, code_version, list(versions), state, error, heartbeat_at)
            )
    return list(result.values())


async def _declared(store: PostgresEventStore, name: str) -> ProjectionStatus:
    async with store.database.connection() as conn:
        cur = await conn.execute(_PROJECTION_DECLARED, {"name": name})
        row = await cur.fetchone()
    if row is None:
        raise ProjectionNotFound(name)
    active, requested, paused, category, types = row
    return ProjectionStatus(name, active, requested, paused, category, types)


async def _require(store: PostgresEventStore, name: str) -> tuple[int, int | None, bool]:
    async with store.database.connection() as conn:
        cur = await conn.execute(_PROJECTION_ROW, {"name": name})
        row = await cur.fetchone()
    if row is None:
        raise ProjectionNotFound(name)
    return row[0], row[1], row[2]


async def pause(store: PostgresEventStore, name: str, *, actor: Actor | None = None) -> None:
    """Pause a projection: its owners release their leases within a third of the lease TTL."""

    async def body(conn: Connection) -> AdminResult[None]:
        cur = await conn.execute(_PAUSE, {"name": name, "paused": True})
        if cur.rowcount != 1:
            raise ProjectionNotFound(name)
        return AdminResult(None)

    await store.audited(actor or Actor.process(), "projection.pause", name, {}, body)


async def resume(store: PostgresEventStore, name: str, *, actor: Actor | None = None) -> None:
    """Resume a paused projection, and restart partitions the stop policy failed."""

    async def body(conn: Connection) -> AdminResult[None]:
        cur = await conn.execute(_PAUSE, {"name": name, "paused": False})
        if cur.rowcount != 1:
            raise ProjectionNotFound(name)
        await conn.execute(_RESUME_FAILED, {"name": name})
        return AdminResult(None)

    await store.audited(actor or Actor.process(), "projection.resume", name, {}, body)


async def request_rebuild(store: PostgresEventStore, name: str, *, actor: Actor | None = None) -> int:
    """Ask workers to build the next version from position 0 and cut over; returns that version."""

    async def body(conn: Connection) -> AdminResult[int]:
        cur = await conn.execute(_REQUEST_REBUILD, {"name": name})
        row = await cur.fetchone()
        if row is None:
            raise ProjectionNotFound(name)
        return AdminResult(int(row[0]))

    version: int = await store.audited(actor or Actor.process(), "projection.rebuild", name, {}, body)
    return version


async def list_parked(
    store: PostgresEventStore,
    name: str | None = None,
    *,
    include_replayed: bool = False,
    limit: int = 1000,
) -> list[ParkedEvent]:
    """Parked events (oldest first), of one projection or all."""
    async with store.database.connection() as conn:
        cur = await conn.execute(
            _LIST_PARKED, {"name": name, "include_replayed": include_replayed, "limit": limit}
        )
        rows = await cur.fetchall()
    return [ParkedEvent(*row) for row in rows]


async def replay_parked(
    store: PostgresEventStore,
    name: str,
    event_ids: Sequence[uuid.UUID] | None = None,
    *,
    actor: Actor | None = None,
) -> int:
    """Ask the owning workers to apply parked events (all of the projection's, or these) once.

    Returns how many requests were recorded; the owners act on them within a third of the
    lease TTL. Watch `list_parked(..., include_replayed=True)` for the outcome.
    """
    ids = list(event_ids) if event_ids is not None else None

    async def body(conn: Connection) -> AdminResult[int]:
        found = await conn.execute(_PROJECTION_ROW, {"name": name})
        if await found.fetchone() is None:
            raise ProjectionNotFound(name)
        cur = await conn.execute(_REQUEST_REPLAY, {"name": name, "event_ids": ids})
        return AdminResult(cur.rowcount, outcome="ok" if cur.rowcount else "unchanged")

    parameters = {"event_ids": [str(i) for i in ids] if ids is not None else None}
    count: int = await store.audited(
        actor or Actor.process(), "projection.replay_parked", name, parameters, body
    )
    return count


async def reached(store: PostgresEventStore, name: str, position: int) -> bool:
    """True when the projection's serving version has dealt with everything up to `position`."""
    async with store.database.connection() as conn:
        cur = await conn.execute(_REACHED, {"name": name, "position": position})
        row = await cur.fetchone()
    assert row is not None
    partitions, done = row
    if partitions == 0:
        await _require(store, name)
        return False
    return bool(done)


async def wait_for_position(
    store: PostgresEventStore,
    name: str,
    position: int,
    timeout: float = 5.0,  # noqa: ASYNC109 - the deadline is part of the answer (WaitTimeout)
) -> None:
    """Return once projection `name` reflects every event up to `position`; `WaitTimeout` otherwise.

    Use the `last_position` of an append: "after my command, show me the updated view".
    Polls with a short, growing delay (5 ms to 50 ms): a live projection typically commits
    within a few milliseconds of the append, and a poll is one index lookup.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            if await reached(store, name, position):
                return
            missing: ProjectionNotFound | None = None
        except ProjectionNotFound as exc:
            # Not registered yet (the API may start before the first worker): keep waiting.
            missing = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if missing is not None:
                raise missing
            raise WaitTimeout(name, position, timeout)
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)


async def rebuild_progress(
    store: PostgresEventStore, name: str, *, interval: float = 1.0
) -> AsyncIterator[RebuildProgress]:
    """Yield the progress of the rebuild of `name` every `interval` seconds until it cut over.

    The CLI draws a progress bar from it (events behind, events/s, ETA).
    """
    _active, requested, _paused = await _require(store, name)
    target = requested
    while True:
        (current,) = await status(store, name, all_versions=True)
        if target is None:
            target = max((p.version for p in current.rebuilding), default=None)
        if target is None or current.active_version >= target:
            yield RebuildProgress(name, target or current.active_version, True, 0, 0, 0.0, 0.0)
            return
        parts = [p for p in current.rebuilding if p.version == target]
        behind = max((p.events_behind for p in parts), default=0)
        rate = sum(p.events_per_second for p in parts)
        applied = sum(p.events_applied for p in parts)
        eta = behind / rate if rate > 0 else None
        yield RebuildProgress(name, target, False, behind, applied, rate, eta)
        await asyncio.sleep(interval)
