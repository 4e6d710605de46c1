"""The lease of one partition: take it, renew it, fence every write with it, give it back.

A lease is the partition's row in ilji.projection_checkpoints: owner, expiry (database clock)
and fencing token. Taking it (acquire.sql) increments the token. Every transaction a runner
commits under the lease ends with a compare-and-set on (owner, token), so that a worker whose
lease was taken over can never commit again, whatever it believes (`LeaseKeeper.transaction`):

- advance.sql when the transaction moves the checkpoint (a batch, a parked event), which also
  compares the old position;
- fence.sql when it does not (setup, the replay of a parked event).

The keeper renews the lease every TTL/3 in a task of its own and learns, with each renewal,
what the operators want (pause, retirement after a rebuild, pending replays); what makes the
runner give the lease back is an `Interruption`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ilji.projections import sql
from ilji.projections.errors import LeaseLost
from ilji.projections.failures import is_infrastructure_error
from ilji.projections.metrics import PartitionMetrics, Rate
from ilji.projections.projection import Context
from ilji.store.database import Connection, Database

log = logging.getLogger(__name__)

_ACQUIRE = sql.load("acquire")
_RENEW = sql.load("renew")
_ADVANCE = sql.load("advance")
_FENCE = sql.load("fence")
_RELEASE = sql.load("release")
_RETIRE = sql.load("retire")
_FAIL = sql.load("fail")
_CHECKPOINT_ROW = sql.load("checkpoint_row")
_GUARD = sql.load("transaction_guard")
_TERMINATE_STALE = sql.load("terminate_stale")


class Interruption(enum.StrEnum):
    """Why a runner stops working under a lease it still holds."""

    #: The worker stops (`Worker.stop`): release the lease, so another worker takes over at once.
    SHUTDOWN = "shutdown"
    #: An operator paused the projection: release the lease until `resume`.
    PAUSED = "paused"
    #: A rebuild cut over to a newer version: this version is retired, not released.
    RETIRED = "retired"
    #: This worker owns more than its share of the partitions: release this one.
    REBALANCE = "rebalance"
    #: The partition failed (the stop policy, or `setup`): fail.sql has released it already.
    FAILED = "failed"


class Interrupted(Exception):
    """The runner must stop working under its lease (see `Interruption`)."""

    def __init__(self, reason: Interruption) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(slots=True)
class Lease:
    """What the runner knows about the lease it holds."""

    token: int
    position: int
    partitions: int
    #: Why the lease is gone (then nothing may be committed).
    lost: str | None = None
    #: Why the runner should give it back.
    interrupt: Interruption | None = None
    #: Look for replay requests (once after acquiring, then when a renewal reports some).
    replay_pending: bool = True
    #: Set whenever one of the above changes, to wake the runner from a wait.
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def lose(self, reason: str) -> None:
        """Another worker owns the partition now, or we cannot tell: stop at once."""
        self.lost = self.lost or reason
        self.wake.set()

    def interrupt_for(self, reason: Interruption) -> None:
        """Ask the runner to give the lease back after the batch under way."""
        self.interrupt = reason
        self.wake.set()

    async def sleep(self, seconds: float) -> None:
        """Pause up to `seconds`, less when something about the lease changes; then `check()`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
        self.wake.clear()
        self.check()

    def check(self) -> None:
        """Raise `LeaseLost` or `Interrupted` when the runner must stop working under the lease."""
        if self.lost:
            raise LeaseLost(self.lost)
        if self.interrupt:
            raise Interrupted(self.interrupt)


class _CheckpointRejected(Exception):
    """advance.sql matched no row: another owner, or a position that moved under us."""


@dataclass(slots=True)
class Fenced:
    """A transaction under a lease (`LeaseKeeper.transaction`): `conn` to write with."""

    conn: Connection
    keeper: LeaseKeeper
    lease: Lease
    #: (last position, events applied, status) once `advance` ran; None: the fence is fence.sql.
    advanced: tuple[int, int, str] | None = None
    #: True once the transaction committed.
    committed: bool = False

    async def advance(self, last: int, applied: int, status: str) -> None:
        """Move the checkpoint to `last` as the transaction's last statement (advance.sql)."""
        keeper = self.keeper
        cur = await self.conn.execute(
            _ADVANCE,
            {
                **keeper.params,
                "owner": keeper.worker_id,
                "token": self.lease.token,
                "first": self.lease.position,
                "last": last,
                "applied": applied,
                "rate": keeper.rate.add(applied),
                "status": status,
                "ttl": keeper.lease_ttl,
            },
        )
        if cur.rowcount != 1:
            keeper.metrics.commits_rejected += 1
            # Raised inside the transaction block: the handler's writes are rolled back.
            raise _CheckpointRejected
        self.advanced = (last, applied, status)


class LeaseKeeper:
    """Takes, renews, fences and gives back the lease of one (projection, version, partition)."""

    def __init__(
        self,
        database: Database,
        *,
        projection: str,
        version: int,
        partition: int,
        worker_id: str,
        lease_ttl: float,
        metrics: PartitionMetrics,
    ) -> None:
        self.database = database
        self.worker_id = worker_id
        self.lease_ttl = lease_ttl
        self.metrics = metrics
        self.rate = Rate()
        self.params: dict[str, Any] = {"name": projection, "version": version, "partition": partition}
        self._log_extra = {
            "projection": projection,
            "version": version,
            "partition": partition,
            "worker": worker_id,
        }
        # Twice the TTL: long enough for honest handlers, short enough that a frozen owner's
        # row locks are gone soon after a new owner took over (see transaction_guard.sql).
        self._timeout_ms = str(int(max(lease_ttl * 2, 1.0) * 1000))
        # A short, fixed-size tag per partition (application_name holds at most 63 bytes).
        # Two partitions whose keys share a CRC-32 would only cost each other a retried batch.
        key = f"{projection}\x00{version}\x00{partition}".encode()
        self._tag_prefix = f"ilji-lease:{zlib.crc32(key):08x}:"
        self._guard = {"timeout_ms": self._timeout_ms, "tag": self._tag_prefix + "0"}

    def extra(self, **more: Any) -> dict[str, Any]:
        """The fields of a log record about this partition."""
        return {**self._log_extra, **more}

    def context(self, lease: Lease) -> Context:
        """What the projection's code is told about who applies events right now."""
        return Context(
            projection=self.params["name"],
            version=self.params["version"],
            partition=self.params["partition"],
            partitions=lease.partitions,
            worker_id=self.worker_id,
            fencing_token=lease.token,
        )

    async def acquire(self) -> Lease | None:
        """Take the lease if nobody holds a live one (acquire.sql); None when it is taken."""
        async with self.database.connection() as conn:
            cur = await conn.execute(
                _ACQUIRE, {**self.params, "owner": self.worker_id, "ttl": self.lease_ttl}
            )
            row = await cur.fetchone()
        if row is None:
            return None
        token, position, partitions = row
        lease = Lease(token=token, position=position, partitions=partitions)
        self._guard = {"timeout_ms": self._timeout_ms, "tag": f"{self._tag_prefix}{lease.token}"}
        m = self.metrics
        m.owned, m.fencing_token, m.position, m.status = True, lease.token, lease.position, "catching_up"
        m.leases_acquired += 1
        log.info("lease acquired", extra=self.extra(token=lease.token, position=lease.position))
        return lease

    @contextlib.asynccontextmanager
    async def transaction(self, lease: Lease) -> AsyncIterator[Fenced]:
        """`async with keeper.transaction(lease) as tx:` one transaction fenced by the lease.

        Its first statement is the guard (transaction_guard.sql), its last the fence: `tx.advance`
        when the body moves the checkpoint, fence.sql otherwise. `tx.committed` says whether it
        committed: when advance.sql matched no row but the lease is still ours, the checkpoint
        had moved under us (our own earlier commit whose answer was lost), so the transaction is
        rolled back, the lease takes the stored position and nothing is raised. Raises
        `LeaseLost` when another worker owns the partition.
        """
        try:
            async with self.database.transaction() as conn:
                await conn.execute(_GUARD, self._guard)
                tx = Fenced(conn, self, lease)
                yield tx
                if tx.advanced is None:
                    await self._fence(conn, lease)
        except _CheckpointRejected:
            await self._resync(lease)
            return
        tx.committed = True
        if tx.advanced is not None:
            last, applied, status = tx.advanced
            lease.position = last
            m = self.metrics
            m.position, m.status = last, status
            m.batches += 1
            m.events_applied += applied
            m.events_per_second = self.rate.add(0)
            log.debug("batch committed", extra=self.extra(position=last, applied=applied))

    async def _fence(self, conn: Connection, lease: Lease) -> None:
        cur = await conn.execute(_FENCE, {**self.params, "owner": self.worker_id, "token": lease.token})
        if cur.rowcount != 1:
            self.metrics.commits_rejected += 1
            raise LeaseLost("the fencing token no longer matches: another worker owns the partition")

    async def _resync(self, lease: Lease) -> None:
        """After a rejected commit: still ours? (A commit whose outcome we never heard of.)"""
        async with self.database.connection() as conn:
            cur = await conn.execute(_CHECKPOINT_ROW, self.params)
            row = await cur.fetchone()
        if row and row[1] == self.worker_id and row[2] == lease.token:
            # Still ours, but the position differs from ours: only our own earlier commit can
            # have moved it (e.g. its acknowledgement was lost). Continue from the stored one.
            log.warning(
                "checkpoint moved under us, resynchronising",
                extra=self.extra(ours=lease.position, stored=row[0]),
            )
            lease.position = row[0]
            self.metrics.position = row[0]
            return
        reason = "another worker owns the partition (commit rejected by the fence)"
        lease.lose(reason)
        raise LeaseLost(reason)

    async def fail(self, lease: Lease, error: str) -> None:
        """Mark the partition failed and release it (fenced); it waits for `resume`."""
        async with self.database.connection() as conn:
            cur = await conn.execute(
                _FAIL, {**self.params, "owner": self.worker_id, "token": lease.token, "error": error}
            )
        if cur.rowcount != 1:
            raise LeaseLost("lost the lease before recording the failure")
        self.metrics.failed += 1
        lease.interrupt = Interruption.FAILED  # fail.sql released the lease already

    async def give_back(self, lease: Lease) -> None:
        """Release the lease (or retire the version), fenced; log the lease's end either way."""
        if lease.lost:
            self.metrics.leases_lost += 1
            log.warning("lease lost", extra=self.extra(token=lease.token, reason=lease.lost))
            return
        if lease.interrupt is Interruption.FAILED:
            return
        retire = lease.interrupt is Interruption.RETIRED
        try:
            async with self.database.connection() as conn:
                await conn.execute(
                    _RETIRE if retire else _RELEASE,
                    {**self.params, "status": "stopped", "owner": self.worker_id, "token": lease.token},
                )
        except Exception as exc:  # the lease expires by itself; others then take over
            log.warning("could not release the lease", extra=self.extra(error=str(exc)))
        if retire:
            log.info("version retired after cutover", extra=self.extra(token=lease.token))
        else:
            log.info("lease released", extra=self.extra(token=lease.token, reason=lease.interrupt))

    async def owner_changed(self, lease: Lease) -> bool:
        """True if the row shows another owner or token; False if ours or unknown."""
        try:
            async with self.database.connection(timeout=2.0) as conn:
                cur = await conn.execute(_CHECKPOINT_ROW, self.params)
                row = await cur.fetchone()
        except Exception:
            return False
        return row is not None and (row[1] != self.worker_id or row[2] != lease.token)

    async def terminate_stale(self) -> None:
        """End the transactions a previous owner left open (terminate_stale.sql)."""
        try:
            async with self.database.connection() as conn:
                cur = await conn.execute(
                    _TERMINATE_STALE, {"pattern": self._tag_prefix + "%", "tag": self._guard["tag"]}
                )
                row = await cur.fetchone()
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            log.warning("cannot end the previous owner's transactions", extra=self.extra(error=str(exc)))
            return
        if row and row[0]:
            log.warning("ended transactions of a previous owner", extra=self.extra(count=row[0]))

    async def renew_until_lost(self, lease: Lease, should_release: Callable[[], bool]) -> None:
        """Renew the lease every TTL/3 until it is lost (run it as a task; cancel it when done).

        Each renewal also reports the operators' switches: a pause or a newer active version
        interrupts the runner, a pending replay wakes it; `should_release()` true (more than
        this worker's share) interrupts it to rebalance.
        """
        last_ok = time.monotonic()
        while lease.lost is None:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                async with self.database.connection(timeout=self.lease_ttl / 3) as conn:
                    cur = await conn.execute(
                        _RENEW,
                        {**self.params, "owner": self.worker_id, "token": lease.token, "ttl": self.lease_ttl},
                    )
                    row = await cur.fetchone()
            except Exception as exc:
                log.warning("lease renewal failed", extra=self.extra(error=str(exc)))
                if time.monotonic() - last_ok > self.lease_ttl:
                    # We cannot tell whether someone took over; stop working on this lease.
                    # (Committing would still be safe: the fence decides, not this flag.)
                    lease.lose("renewals failing for longer than the lease TTL")
                continue
            if row is None:
                lease.lose("taken over by another worker")
                return
            last_ok = time.monotonic()
            paused, active_version, replay_pending = row
            if paused:
                lease.interrupt_for(Interruption.PAUSED)
            elif active_version > self.params["version"]:
                lease.interrupt_for(Interruption.RETIRED)
            if replay_pending:
                lease.replay_pending = True
                lease.wake.set()
            if should_release():
                lease.interrupt_for(Interruption.REBALANCE)
