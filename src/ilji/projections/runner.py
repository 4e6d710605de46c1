"""One partition of one projection version: acquire its lease, apply batches, renew, give it back.

The loop of a `PartitionRunner`:

1. Try to take the partition's lease (acquire.sql). Not free: wait a third of the lease TTL and
   try again. Each acquisition increments the row's fencing token.
2. While owning: read the next page of the log after the checkpoint, apply the partition's
   events of that page in ONE transaction and advance the checkpoint in that same transaction
   with a compare-and-set on (owner, fencing token, old position) (advance.sql). A set that
   matches no row means another worker took over: the transaction is rolled back, read-model
   writes included, and the runner goes back to step 1.
3. A separate task renews the lease every TTL/3. A frozen worker stops renewing, its lease
   expires, another worker takes it over with a new token, and the frozen worker's next
   commit fails on the token when it wakes up.

Delivery: the checkpoint moves only with the writes, so a projection that writes PostgreSQL
tables applies every event exactly once. A handler with external side effects sees an event
again when a crash hits between the side effect and the commit (at least once).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from ilji.domain.events import RecordedEvent
from ilji.projections import sql
from ilji.projections.errors import LeaseLost
from ilji.projections.failures import describe_error, handler_error_is_infrastructure, is_infrastructure_error
from ilji.projections.projection import Context, Projection, partition_of, retry_delay
from ilji.store.follow import Listener
from ilji.store.postgres import PostgresEventStore

log = logging.getLogger("ilji.projections")

_ACQUIRE = sql.load("acquire")
_RENEW = sql.load("renew")
_ADVANCE = sql.load("advance")
_FENCE = sql.load("fence")
_RELEASE = sql.load("release")
_RETIRE = sql.load("retire")
_FAIL = sql.load("fail")
_PARK = sql.load("park")
_PENDING_REPLAYS = sql.load("pending_replays")
_MARK_REPLAYED = sql.load("mark_replayed")
_REPLAY_FAILED = sql.load("replay_failed")
_CHECKPOINT_ROW = sql.load("checkpoint_row")
_GUARD = sql.load("transaction_guard")
_SETUP_LOCK = sql.load("setup_lock")
_TERMINATE_STALE = sql.load("terminate_stale")

# After a wake-up that showed nothing new (an older transaction still hides new events behind
# the visible bound), re-read after this delay, doubling up to the poll interval.
_FIRST_RETRY_DELAY = 0.005

# Events per second are measured over this window.
_RATE_WINDOW = 5.0


class Balancer(Protocol):
    """Decides how many partitions of a projection this worker should own (see worker.py)."""

    def may_acquire(self, runner: PartitionRunner) -> bool:
        """False when this worker already owns its fair share of the runner's projection."""
        ...

    def should_release(self, runner: PartitionRunner) -> bool:
        """True when this worker owns more than its share and this runner should give one back."""
        ...


class _HandlerFailed(Exception):
    """The handler raised on a batch (the culprit is found one event at a time)."""


class _Interrupted(Exception):
    """The runner must stop owning: shutdown, pause or retirement."""


@dataclass(slots=True)
class PartitionMetrics:
    """Counters of one partition runner in this process (the server exports them)."""

    projection: str
    version: int
    partition: int
    owned: bool = False
    fencing_token: int = 0
    position: int = 0
    status: str = "stopped"
    batches: int = 0
    events_applied: int = 0
    events_skipped: int = 0
    leases_acquired: int = 0
    leases_lost: int = 0
    commits_rejected: int = 0
    retries: int = 0
    parked: int = 0
    replayed: int = 0
    failed: int = 0
    infrastructure_errors: int = 0
    events_per_second: float = 0.0


@dataclass(slots=True)
class _Lease:
    """What the runner knows about the lease it holds."""

    token: int
    position: int
    partitions: int
    acquired_at: float
    lost: str | None = None  # why the lease is gone (then nothing may be committed)
    interrupt: str | None = None  # why the runner should give it back (paused, retired)
    replay_pending: bool = True  # look for replay requests once after acquiring
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class _Rate:
    """Events per second over the last few seconds."""

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, count: int) -> float:
        """Record `count` events applied now; the rate over the window."""
        now = time.monotonic()
        self._samples.append((now, count))
        while self._samples and self._samples[0][0] < now - _RATE_WINDOW:
            self._samples.popleft()
        span = max(now - self._samples[0][0], 1.0) if len(self._samples) > 1 else _RATE_WINDOW
        return sum(c for _, c in self._samples) / span


class PartitionRunner:
    """Runs one (projection, version, partition) while this worker owns its lease."""

    def __init__(
        self,
        store: PostgresEventStore,
        listener: Listener,
        projection: Projection,
        *,
        version: int,
        partition: int,
        worker_id: str,
        lease_ttl: float = 5.0,
        poll_interval: float = 1.0,
        balancer: Balancer | None = None,
    ) -> None:
        self.store = store
        self.balancer = balancer
        self.listener = listener
        self.projection = projection
        self.version = version
        self.partition = partition
        self.worker_id = worker_id
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.metrics = PartitionMetrics(projection.name, version, partition)
        self._stopping = False
        self._wake = asyncio.Event()  # stop() wakes every wait of this runner
        self._lease: _Lease | None = None
        self._retired = False
        self._attempts: dict[uuid.UUID, int] = {}
        self._rate = _Rate()
        self._params = {"name": projection.name, "version": version, "partition": partition}
        # Twice the TTL: long enough for honest handlers, short enough that a frozen owner's
        # row locks are gone soon after a new owner took over (see transaction_guard.sql).
        self._timeout_ms = str(int(max(lease_ttl * 2, 1.0) * 1000))
        # A short, fixed-size tag per partition (application_name holds at most 63 bytes).
        # Two partitions whose keys share a CRC-32 would only cost each other a retried batch.
        key = f"{projection.name}\x00{version}\x00{partition}".encode()
        self._tag_prefix = f"ilji-lease:{zlib.crc32(key):08x}:"
        self._guard = {"timeout_ms": self._timeout_ms, "tag": self._tag_prefix + "0"}

    @property
    def label(self) -> str:
        """`name@vN#k`, for logs."""
        return f"{self.projection.name}@v{self.version}#{self.partition}"

    def _extra(self, **more: Any) -> dict[str, Any]:
        return {
            "projection": self.projection.name,
            "version": self.version,
            "partition": self.partition,
            "worker": self.worker_id,
            **more,
        }

    def stop(self) -> None:
        """Ask the runner to finish its batch, release its lease and return."""
        self._stopping = True
        self._wake.set()
        if self._lease is not None:
            self._lease.interrupt = self._lease.interrupt or "shutdown"
            self._lease.wake.set()

    # -- the outer loop: acquire, own, repeat -----------------------------------------------

    async def run(self) -> None:
        """Acquire, process while owning, repeat until `stop()` or retirement."""
        backoff = 0.1
        while not self._stopping and not self._retired:
            if self.balancer is not None and not self.balancer.may_acquire(self):
                # Our share is full: leave this partition to a worker with less.
                await self._sleep(self.lease_ttl / 3 * random.uniform(0.5, 1.0))
                continue
            try:
                lease = await self._acquire()
                backoff = 0.1
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                self.metrics.infrastructure_errors += 1
                log.warning("acquire failed, retrying", extra=self._extra(error=str(exc)))
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if lease is None:
                # Jitter, so that workers started together do not retry in lockstep.
                await self._sleep(self.lease_ttl / 3 * random.uniform(0.5, 1.0))
                continue
            await self._own(lease)

    async def _sleep(self, seconds: float) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _acquire(self) -> _Lease | None:
        async with self.store.database.connection() as conn:
            cur = await conn.execute(
                _ACQUIRE, {**self._params, "owner": self.worker_id, "ttl": self.lease_ttl}
            )
            row = await cur.fetchone()
        if row is None:
            return None
        token, position, partitions = row
        return _Lease(token=token, position=position, partitions=partitions, acquired_at=time.monotonic())

    async def _own(self, lease: _Lease) -> None:
        self._lease = lease
        m = self.metrics
        m.owned, m.fencing_token, m.position, m.status = True, lease.token, lease.position, "catching_up"
        m.leases_acquired += 1
        log.info("lease acquired", extra=self._extra(token=lease.token, position=lease.position))
        self._guard = {"timeout_ms": self._timeout_ms, "tag": f"{self._tag_prefix}{lease.token}"}
        renewer = asyncio.get_running_loop().create_task(self._renew_loop(lease), name=f"renew {self.label}")
        try:
            try:
                await self._setup(lease)
            except _HandlerFailed as exc:
                # A bug in setup() fails the partition (like the stop policy) rather than
                # restarting it in a loop; `resume` retries once it is fixed.
                await self._fail(lease, f"setup failed: {exc}")
                raise _Interrupted("failed") from exc
            await self._process(lease)
        except LeaseLost as exc:
            lease.lost = lease.lost or str(exc)
        except _Interrupted:
            pass
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            # The database went away while we owned the lease. After a broken connection we
            # cannot know whether the last commit happened, so start over from the stored
            # checkpoint: back off, give the lease back if the database lets us (otherwise it
            # expires), and acquire again like anybody else.
            m.infrastructure_errors += 1
            if await self._owner_changed(lease):
                # Typically our connection was ended by the new owner (terminate_stale.sql).
                lease.lost = f"another worker took over ({exc})"
            else:
                log.warning("database error while owning, backing off", extra=self._extra(error=str(exc)))
                await self._sleep(1.0)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer
            m.owned, m.status = False, "stopped"
            self._lease = None
        if lease.lost:
            m.leases_lost += 1
            log.warning("lease lost", extra=self._extra(token=lease.token, reason=lease.lost))
            return
        if lease.interrupt == "failed":
            return
        if lease.interrupt == "retired":
            await self._give_back(lease, _RETIRE, {})
            self._retired = True
            log.info("version retired after cutover", extra=self._extra(token=lease.token))
            return
        await self._give_back(lease, _RELEASE, {"status": "stopped"})
        log.info("lease released", extra=self._extra(token=lease.token, reason=lease.interrupt))

    async def _owner_changed(self, lease: _Lease) -> bool:
        """True if the row shows another owner or token; False if ours or unknown."""
        try:
            async with self.store.database.connection(timeout=2.0) as conn:
                cur = await conn.execute(_CHECKPOINT_ROW, self._params)
                row = await cur.fetchone()
        except Exception:
            return False
        return row is not None and (row[1] != self.worker_id or row[2] != lease.token)

    async def _give_back(self, lease: _Lease, query: bytes, params: dict[str, Any]) -> None:
        try:
            async with self.store.database.connection() as conn:
                await conn.execute(
                    query, {**self._params, **params, "owner": self.worker_id, "token": lease.token}
                )
        except Exception as exc:  # the lease expires by itself; others then take over
            log.warning("could not release the lease", extra=self._extra(error=str(exc)))

    async def _renew_loop(self, lease: _Lease) -> None:
        last_ok = time.monotonic()
        while lease.lost is None:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                async with self.store.database.connection(timeout=self.lease_ttl / 3) as conn:
                    cur = await conn.execute(
                        _RENEW,
                        {
                            **self._params,
                            "owner": self.worker_id,
                            "token": lease.token,
                            "ttl": self.lease_ttl,
                        },
                    )
                    row = await cur.fetchone()
            except Exception as exc:
                log.warning("lease renewal failed", extra=self._extra(error=str(exc)))
                if time.monotonic() - last_ok > self.lease_ttl:
                    # We cannot tell whether someone took over; stop working on this lease.
                    # (Committing would still be safe: the fence decides, not this flag.)
                    lease.lost = "renewals failing for longer than the lease TTL"
                    lease.wake.set()
                continue
            if row is None:
                lease.lost = "taken over by another worker"
                lease.wake.set()
                return
            last_ok = time.monotonic()
            paused, active_version, replay_pending = row
            if paused:
                lease.interrupt = "paused"
                lease.wake.set()
            elif active_version > self.version:
                lease.interrupt = "retired"
                lease.wake.set()
            if replay_pending:
                lease.replay_pending = True
                lease.wake.set()
            if self.balancer is not None and self.balancer.should_release(self):
                lease.interrupt = "rebalance"
                lease.wake.set()

    def _context(self, lease: _Lease) -> Context:
        return Context(
            projection=self.projection.name,
            version=self.version,
            partition=self.partition,
            partitions=lease.partitions,
            worker_id=self.worker_id,
            fencing_token=lease.token,
        )

    async def _terminate_stale(self) -> None:
        try:
            async with self.store.database.connection() as conn:
                cur = await conn.execute(
                    _TERMINATE_STALE, {"pattern": self._tag_prefix + "%", "tag": self._guard["tag"]}
                )
                row = await cur.fetchone()
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            log.warning("cannot end the previous owner's transactions", extra=self._extra(error=str(exc)))
            return
        if row and row[0]:
            log.warning("ended transactions of a previous owner", extra=self._extra(count=row[0]))

    async def _setup(self, lease: _Lease) -> None:
        await self._terminate_stale()
        async with self.store.database.connection() as conn, conn.transaction():
            await conn.execute(_GUARD, self._guard)
            await conn.execute(_SETUP_LOCK, {"name": self.projection.name})
            try:
                await self.projection.setup(conn, self._context(lease))
            except Exception as exc:
                if handler_error_is_infrastructure(exc, conn):
                    raise
                raise _HandlerFailed(describe_error(exc)) from exc
            await self._fence(conn, lease)

    async def _fence(self, conn: psycopg.AsyncConnection[Any], lease: _Lease) -> None:
        cur = await conn.execute(_FENCE, {**self._params, "owner": self.worker_id, "token": lease.token})
        if cur.rowcount != 1:
            self.metrics.commits_rejected += 1
            raise LeaseLost("the fencing token no longer matches: another worker owns the partition")

    # -- the inner loop: read, apply, commit ------------------------------------------------

    def _check(self, lease: _Lease) -> None:
        if lease.lost:
            raise LeaseLost(lease.lost)
        if lease.interrupt:
            raise _Interrupted(lease.interrupt)

    async def _read(self, after: int, limit: int | None = None) -> list[RecordedEvent]:
        # Log pages may come from a hot standby (store.reader): its visible bound is gap-safe
        # too, and everything this runner writes (read model, checkpoint) goes to the primary.
        p = self.projection
        limit = limit or p.batch_size
        reader = self.store.reader
        if p.category is None:
            return await reader.read_all(after, limit, p.types)
        return await reader.read_category(p.category, after, limit, p.types)

    async def _process(self, lease: _Lease) -> None:
        p = self.projection
        pending = False  # woken, but the last read showed nothing new yet
        delay = _FIRST_RETRY_DELAY
        reported_running = False
        while True:
            self._check(lease)
            if lease.replay_pending:
                lease.replay_pending = False
                await self._replay(lease)
            # Read the generation before the page, so a notification during the read is kept.
            generation = self.listener.generation
            page = await self._read(lease.position)
            self._check(lease)
            caught_up = len(page) < p.batch_size
            if page:
                await self._apply_page(lease, page, "running" if caught_up else "catching_up")
                pending, delay = False, _FIRST_RETRY_DELAY
                reported_running = caught_up
                if not caught_up:
                    continue
            elif not reported_running:
                # Nothing to read at all: record that we are live (an empty, fenced advance).
                await self._commit(lease, [], lease.position, "running")
                reported_running = True
            self.metrics.status = "running"
            if pending:
                timeout, delay = delay, min(delay * 2, self.poll_interval)
            else:
                timeout = self.poll_interval
            pending = await self._wait(generation, timeout, lease)

    async def _wait(self, generation: int, within: float, lease: _Lease) -> bool:
        """Wait for a notification, the timeout, or a lease event; True if notified."""
        if lease.wake.is_set():
            lease.wake.clear()
            return False
        notified = asyncio.ensure_future(self.listener.wait(generation, within))
        woken = asyncio.ensure_future(lease.wake.wait())
        try:
            await asyncio.wait({notified, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (notified, woken):
                task.cancel()
        lease.wake.clear()
        return notified.done() and not notified.cancelled() and notified.result()

    def _mine(self, page: Sequence[RecordedEvent], partitions: int) -> list[RecordedEvent]:
        if partitions == 1:
            return list(page)
        return [e for e in page if partition_of(e.stream, partitions) == self.partition]

    async def _apply_page(self, lease: _Lease, page: list[RecordedEvent], status: str) -> None:
        mine = self._mine(page, lease.partitions)
        self.metrics.events_skipped += len(page) - len(mine)
        if not (mine and mine[0].id in self._attempts):
            try:
                await self._commit(lease, mine, page[-1].position, status)
                return
            except _HandlerFailed:
                pass
        # Some event of the page fails: apply one at a time to find it, commit those before it.
        failed = await self._apply_one_by_one(lease, page, status)
        if failed is not None:
            await self._on_failure(lease, *failed)

    async def _commit(self, lease: _Lease, events: list[RecordedEvent], last: int, status: str) -> None:
        """Apply `events` and move the checkpoint to `last` in one transaction (fenced)."""
        first = lease.position
        try:
            async with self.store.database.connection() as conn, conn.transaction():
                await conn.execute(_GUARD, self._guard)
                if events:
                    try:
                        await self.projection.apply(conn, events, self._context(lease))
                    except Exception as exc:
                        if handler_error_is_infrastructure(exc, conn):
                            raise
                        raise _HandlerFailed(describe_error(exc)) from exc
                await self._advance(conn, lease, first, last, len(events), status)
        except LeaseLost:
            await self._resync(lease, last)
            return
        self._committed(lease, last, len(events), status)

    async def _advance(
        self,
        conn: psycopg.AsyncConnection[Any],
        lease: _Lease,
        first: int,
        last: int,
        applied: int,
        status: str,
    ) -> None:
        rate = self._rate.add(applied)
        cur = await conn.execute(
            _ADVANCE,
            {
                **self._params,
                "owner": self.worker_id,
                "token": lease.token,
                "first": first,
                "last": last,
                "applied": applied,
                "rate": rate,
                "status": status,
                "ttl": self.lease_ttl,
            },
        )
        if cur.rowcount != 1:
            self.metrics.commits_rejected += 1
            # Raising inside the transaction block rolls back the handler's writes.
            raise LeaseLost("checkpoint compare-and-set matched no row")

    async def _resync(self, lease: _Lease, last: int) -> None:
        """After a rejected commit: still ours? (A commit whose outcome we never heard of.)"""
        async with self.store.database.connection() as conn:
            cur = await conn.execute(_CHECKPOINT_ROW, self._params)
            row = await cur.fetchone()
        if row and row[1] == self.worker_id and row[2] == lease.token:
            # Still ours, but the position differs from ours: only our own earlier commit can
            # have moved it (e.g. its acknowledgement was lost). Continue from the stored one.
            log.warning(
                "checkpoint moved under us, resynchronising",
                extra=self._extra(ours=lease.position, stored=row[0]),
            )
            lease.position = row[0]
            self.metrics.position = row[0]
            return
        lease.lost = "another worker owns the partition (commit rejected by the fence)"
        raise LeaseLost(lease.lost)

    def _committed(self, lease: _Lease, last: int, applied: int, status: str) -> None:
        lease.position = last
        m = self.metrics
        m.position, m.status = last, status
        m.batches += 1
        m.events_applied += applied
        m.events_per_second = self._rate.add(0)
        log.debug("batch committed", extra=self._extra(position=last, applied=applied))

    async def _apply_one_by_one(
        self, lease: _Lease, page: list[RecordedEvent], status: str
    ) -> tuple[RecordedEvent, BaseException] | None:
        """Apply the page event by event, each in a savepoint; commit up to the first failure."""
        first = lease.position
        done, applied = first, 0
        failed: tuple[RecordedEvent, BaseException] | None = None
        ctx = self._context(lease)
        try:
            async with self.store.database.connection() as conn, conn.transaction():
                await conn.execute(_GUARD, self._guard)
                for event in page:
                    if (
                        lease.partitions > 1
                        and partition_of(event.stream, lease.partitions) != self.partition
                    ):
                        done = event.position
                        continue
                    try:
                        # A savepoint: a failing event's writes are undone, the others' kept.
                        async with conn.transaction():
                            await self.projection.apply(conn, [event], ctx)
                    except Exception as exc:
                        if handler_error_is_infrastructure(exc, conn):
                            raise
                        failed = (event, exc)
                        break
                    self._attempts.pop(event.id, None)
                    done, applied = event.position, applied + 1
                if done != first:
                    await self._advance(conn, lease, first, done, applied, status)
        except LeaseLost:
            await self._resync(lease, done)
            return None
        if done != first:
            self._committed(lease, done, applied, status)
        return failed

    async def _on_failure(self, lease: _Lease, event: RecordedEvent, exc: BaseException) -> None:
        p = self.projection
        attempt = self._attempts.get(event.id, 0) + 1
        self._attempts[event.id] = attempt
        # Stored, logged and shown to readers of the status: never row data (see failures.py).
        error = describe_error(exc)
        if attempt < p.max_attempts:
            self.metrics.retries += 1
            pause = retry_delay(p, attempt)
            log.warning(
                "handler failed, will retry",
                extra=self._extra(
                    event_id=str(event.id), position=event.position, attempt=attempt, error=error
                ),
            )
            await self._sleep_owned(pause, lease)
            return
        self._attempts.pop(event.id, None)
        if p.on_poison == "stop":
            log.error(
                "poison event: partition stopped",
                extra=self._extra(event_id=str(event.id), position=event.position, error=error),
            )
            await self._fail(lease, f"event {event.id} at position {event.position}: {error}")
            raise _Interrupted("failed")
        first = lease.position
        try:
            async with self.store.database.connection() as conn, conn.transaction():
                await conn.execute(_GUARD, self._guard)
                await conn.execute(
                    _PARK,
                    {
                        **self._params,
                        "position": event.position,
                        "event_id": event.id,
                        "stream": event.stream,
                        "type": event.type,
                        "error": error,
                        "attempts": attempt,
                    },
                )
                # Moving the checkpoint past the event in the same transaction: parked and
                # skipped together, or neither.
                await self._advance(conn, lease, first, event.position, 0, "catching_up")
        except LeaseLost:
            await self._resync(lease, event.position)
            return
        self._committed(lease, event.position, 0, "catching_up")
        self.metrics.parked += 1
        log.error(
            "poison event parked",
            extra=self._extra(event_id=str(event.id), position=event.position, attempts=attempt, error=error),
        )

    async def _fail(self, lease: _Lease, error: str) -> None:
        """Mark the partition failed and release it (fenced); it waits for `resume`."""
        async with self.store.database.connection() as conn:
            cur = await conn.execute(
                _FAIL, {**self._params, "owner": self.worker_id, "token": lease.token, "error": error}
            )
        if cur.rowcount != 1:
            raise LeaseLost("lost the lease before recording the failure")
        self.metrics.failed += 1
        lease.interrupt = "failed"  # fail.sql released the lease already

    async def _sleep_owned(self, seconds: float, lease: _Lease) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lease.wake.wait(), seconds)
        lease.wake.clear()
        self._check(lease)

    # -- replays of parked events -----------------------------------------------------------

    async def _replay(self, lease: _Lease) -> None:
        async with self.store.database.connection() as conn:
            cur = await conn.execute(_PENDING_REPLAYS, self._params)
            requests = await cur.fetchall()
        for event_id, position, _attempts in requests:
            self._check(lease)
            # The projection's own read (its category, `$` ones included, and types), so every
            # event it can park it can also find again.
            page = await self._read(position - 1, 1)
            if not page or page[0].id != event_id:
                await self._replay_failed(event_id, "the event is not in the log at its position")
                continue
            event = page[0]
            try:
                async with self.store.database.connection() as conn, conn.transaction():
                    await conn.execute(_GUARD, self._guard)
                    try:
                        await self.projection.apply(conn, [event], self._context(lease))
                    except Exception as exc:
                        if handler_error_is_infrastructure(exc, conn):
                            raise
                        raise _HandlerFailed(describe_error(exc)) from exc
                    cur = await conn.execute(_MARK_REPLAYED, {**self._params, "event_id": event_id})
                    if cur.rowcount != 1:
                        raise _HandlerFailed("already replayed")
                    await self._fence(conn, lease)
            except _HandlerFailed as exc:
                await self._replay_failed(event_id, str(exc))
                continue
            self.metrics.replayed += 1
            log.info("parked event replayed", extra=self._extra(event_id=str(event_id), position=position))

    async def _replay_failed(self, event_id: uuid.UUID, error: str) -> None:
        async with self.store.database.connection() as conn:
            await conn.execute(_REPLAY_FAILED, {**self._params, "event_id": event_id, "error": error})
        log.error("replay of a parked event failed", extra=self._extra(event_id=str(event_id), error=error))
