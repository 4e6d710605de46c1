"""One partition of one projection version: the apply loop a worker runs while it owns the lease.

The loop of a `PartitionRunner`:

1. Take the partition's lease (`ilji.projections.lease`). Not free: wait a third of the lease
   TTL and try again. Each acquisition increments the row's fencing token.
2. While owning: read the next page of the log after the checkpoint, apply the partition's
   events of that page in ONE transaction and advance the checkpoint in that same transaction
   with a compare-and-set on (owner, fencing token, old position) (advance.sql). A set that
   matches no row means another worker took over: the transaction is rolled back, read-model
   writes included, and the runner goes back to step 1.
3. A separate task renews the lease every TTL/3. A frozen worker stops renewing, its lease
   expires, another worker takes it over with a new token, and the frozen worker's next
   commit fails on the token when it wakes up.

An event the handler fails on is found by applying the page again one event at a time, and is
then retried, parked or stops the partition (`ilji.projections.poison`).

Delivery: the checkpoint moves only with the writes, so a projection that writes PostgreSQL
tables applies every event exactly once. A handler with external side effects sees an event
again when a crash hits between the side effect and the commit (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence

from ilji.domain.events import RecordedEvent
from ilji.projections import sql
from ilji.projections.balance import Balancer
from ilji.projections.errors import LeaseLost
from ilji.projections.failures import HandlerFailed, is_infrastructure_error, run_handler
from ilji.projections.lease import Interrupted, Interruption, Lease, LeaseKeeper
from ilji.projections.metrics import PartitionMetrics
from ilji.projections.poison import PoisonEvents
from ilji.projections.projection import Projection, partition_of
from ilji.store.follow import Listener
from ilji.store.postgres import PostgresEventStore
from ilji.store.wake import Backoff, WakeSchedule

log = logging.getLogger(__name__)

_SETUP_LOCK = sql.load("setup_lock")


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
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.metrics = PartitionMetrics(projection.name, version, partition)
        self.leases = LeaseKeeper(
            store.database,
            projection=projection.name,
            version=version,
            partition=partition,
            worker_id=worker_id,
            lease_ttl=lease_ttl,
            metrics=self.metrics,
        )
        self.poison = PoisonEvents(self.leases, projection, self._read)
        self._stopping = False
        self._wake = asyncio.Event()  # stop() wakes every wait of this runner
        self._lease: Lease | None = None
        self._retired = False

    @property
    def label(self) -> str:
        """`name@vN#k`, for logs."""
        return f"{self.projection.name}@v{self.version}#{self.partition}"

    def stop(self) -> None:
        """Ask the runner to finish its batch, release its lease and return."""
        self._stopping = True
        self._wake.set()
        if self._lease is not None:
            self._lease.interrupt_for(self._lease.interrupt or Interruption.SHUTDOWN)

    # -- the outer loop: acquire, own, repeat -----------------------------------------------

    async def run(self) -> None:
        """Acquire, process while owning, repeat until `stop()` or retirement."""
        backoff = Backoff()
        while not self._stopping and not self._retired:
            if self.balancer is not None and not self.balancer.may_acquire(
                self.projection.name, self.version
            ):
                # Our share is full: leave this partition to a worker with less.
                await self._sleep(self.lease_ttl / 3 * random.uniform(0.5, 1.0))
                continue
            try:
                lease = await self.leases.acquire()
                backoff.reset()
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                self.metrics.infrastructure_errors += 1
                log.warning("acquire failed, retrying", extra=self.leases.extra(error=str(exc)))
                await self._sleep(backoff.next())
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

    def _should_release(self) -> bool:
        return self.balancer is not None and self.balancer.should_release(
            self.projection.name, self.version, self.partition
        )

    async def _own(self, lease: Lease) -> None:
        self._lease = lease
        renewer = asyncio.get_running_loop().create_task(
            self.leases.renew_until_lost(lease, self._should_release), name=f"renew {self.label}"
        )
        try:
            await self._setup(lease)
            await self._process(lease)
        except LeaseLost as exc:
            lease.lose(str(exc))
        except Interrupted:
            pass
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            # The database went away while we owned the lease. After a broken connection we
            # cannot know whether the last commit happened, so start over from the stored
            # checkpoint: back off, give the lease back if the database lets us (otherwise it
            # expires), and acquire again like anybody else.
            self.metrics.infrastructure_errors += 1
            if await self.leases.owner_changed(lease):
                # Typically our connection was ended by the new owner (terminate_stale.sql).
                lease.lose(f"another worker took over ({exc})")
            else:
                log.warning(
                    "database error while owning, backing off", extra=self.leases.extra(error=str(exc))
                )
                await self._sleep(1.0)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer
            self.metrics.owned, self.metrics.status = False, "stopped"
            self._lease = None
        await self.leases.give_back(lease)
        if lease.interrupt is Interruption.RETIRED and not lease.lost:
            self._retired = True

    async def _setup(self, lease: Lease) -> None:
        """Create the version's tables (the projection's `setup`), serialised per projection."""
        await self.leases.terminate_stale()
        try:
            async with self.leases.transaction(lease) as tx:
                await tx.conn.execute(_SETUP_LOCK, {"name": self.projection.name})
                await run_handler(tx.conn, self.projection.setup(tx.conn, self.leases.context(lease)))
        except HandlerFailed as failure:
            # A bug in setup() fails the partition (like the stop policy) rather than
            # restarting it in a loop; `resume` retries once it is fixed.
            await self.leases.fail(lease, f"setup failed: {failure.error}")
            raise Interrupted(Interruption.FAILED) from failure

    # -- the inner loop: read, apply, commit ------------------------------------------------

    async def _read(self, after: int, limit: int | None = None) -> list[RecordedEvent]:
        # Log pages may come from a hot standby (store.reader): its visible bound is gap-safe
        # too, and everything this runner writes (read model, checkpoint) goes to the primary.
        p = self.projection
        limit = limit or p.batch_size
        reader = self.store.reader
        if p.category is None:
            return await reader.read_all(after, limit, p.types)
        return await reader.read_category(p.category, after, limit, p.types)

    async def _process(self, lease: Lease) -> None:
        p = self.projection
        schedule = WakeSchedule(self.poll_interval)
        reported_running = False
        while True:
            lease.check()
            if lease.replay_pending:
                lease.replay_pending = False
                await self.poison.replay(lease)
            # Read the generation before the page, so a notification during the read is kept.
            generation = self.listener.generation
            page = await self._read(lease.position)
            lease.check()
            caught_up = len(page) < p.batch_size
            if page:
                await self._apply_page(lease, page, "running" if caught_up else "catching_up")
                schedule.found()
                reported_running = caught_up
                if not caught_up:
                    continue
            elif not reported_running:
                # Nothing to read at all: record that we are live (an empty, fenced advance).
                await self._commit(lease, [], lease.position, "running")
                reported_running = True
            self.metrics.status = "running"
            if await self._wait(generation, schedule.next_wait(), lease):
                schedule.woken()

    async def _wait(self, generation: int, within: float, lease: Lease) -> bool:
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

    def _mine(self, event: RecordedEvent, partitions: int) -> bool:
        return partitions == 1 or partition_of(event.stream, partitions) == self.partition

    async def _apply_page(self, lease: Lease, page: list[RecordedEvent], status: str) -> None:
        mine = [e for e in page if self._mine(e, lease.partitions)]
        self.metrics.events_skipped += len(page) - len(mine)
        if not (mine and self.poison.failed_before(mine[0])):
            try:
                await self._commit(lease, mine, page[-1].position, status)
                return
            except HandlerFailed:
                pass
        # Some event of the page fails: apply one at a time to find it, commit those before it.
        failed = await self._apply_one_by_one(lease, page, status)
        if failed is not None:
            await self.poison.failed(lease, *failed)

    async def _commit(self, lease: Lease, events: Sequence[RecordedEvent], last: int, status: str) -> None:
        """Apply `events` and move the checkpoint to `last` in one transaction (fenced)."""
        async with self.leases.transaction(lease) as tx:
            if events:
                await run_handler(tx.conn, self.projection.apply(tx.conn, events, self.leases.context(lease)))
            await tx.advance(last, len(events), status)

    async def _apply_one_by_one(
        self, lease: Lease, page: list[RecordedEvent], status: str
    ) -> tuple[RecordedEvent, HandlerFailed] | None:
        """Apply the page event by event, each in a savepoint; commit up to the first failure."""
        done, applied = lease.position, 0
        failed: tuple[RecordedEvent, HandlerFailed] | None = None
        ctx = self.leases.context(lease)
        async with self.leases.transaction(lease) as tx:
            for event in page:
                if not self._mine(event, lease.partitions):
                    done = event.position
                    continue
                try:
                    # A savepoint: a failing event's writes are undone, the others' kept.
                    async with tx.conn.transaction():
                        await run_handler(tx.conn, self.projection.apply(tx.conn, [event], ctx))
                except HandlerFailed as failure:
                    failed = (event, failure)
                    break
                self.poison.succeeded(event)
                done, applied = event.position, applied + 1
            if done != lease.position:
                await tx.advance(done, applied, status)
        return failed if tx.committed else None
