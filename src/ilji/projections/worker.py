"""The worker: runs every registered projection, partition by partition, wherever it can own them.

Start as many workers (processes, Kubernetes replicas) as you like against one database.
Each runs a `PartitionRunner` for every partition of the projection versions its code may
run (`ilji.projections.versions`: only versions built by code of the same `version`, with the
partition count fixed when the version was created); the leases decide which worker actually
processes which partition, one at a time. A controller per projection watches for rebuilds:
it starts the runners of a version being built and cuts over when that version has caught up.

Stop with `stop()` (call it from your SIGTERM handler): runners finish their batch and
release their leases, so other workers take over at once instead of after the lease TTL.

Leases and failure
------------------
A lease is a row (ilji.projection_checkpoints): owner, expiry (database clock) and fencing
token. The TTL defaults to 5 s and owners renew every TTL/3. A frozen owner's lease expires
and another worker takes the row with token + 1; from then on every write of the old owner
fails on the token (advance.sql), and the new owner also terminates transactions still open
under the old token (terminate_stale.sql), which would otherwise hold row locks and the
global log's visible bound. A lease that expired but that nobody took is still the owner's
(same token), so its late commit is allowed: nobody else can have applied those events. A
process restarted with the same `worker_id` takes its rows back at once (new token).

Behind PgBouncer in transaction mode
------------------------------------
Everything that decides ownership and exactly-once is a plain transaction: leases are rows,
settings are `set_config(..., is_local => true)` and the setup lock is a transaction-level
advisory lock, so nothing depends on a server session surviving between transactions
(session advisory locks would: they end up held by, or released from, whichever client the
pooler gives that session to next). Only LISTEN needs a session: open the store with
`listen_conninfo` for a direct connection, or rely on polling (`poll_interval`; lower it, e.g.
0.1 s, if you do).

The store
---------
The caller opens the store and closes it after `run()` returned: where LISTEN goes, whether the
URL is a pooler and which standby pages are read from are the store's settings
(`PostgresEventStore.open`), and `store_options` gives the pool a worker needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import TypedDict

from ilji.domain.errors import ValidationError
from ilji.projections import sql, versions
from ilji.projections.balance import Balancer
from ilji.projections.failures import is_infrastructure_error
from ilji.projections.metrics import PartitionMetrics
from ilji.projections.projection import Projection, validate_projection
from ilji.projections.rebuild import cutover
from ilji.projections.runner import PartitionRunner
from ilji.store.database import Connection
from ilji.store.follow import Listener
from ilji.store.postgres import PostgresEventStore
from ilji.store.wake import Backoff

log = logging.getLogger(__name__)

_REGISTER = sql.load("register")
_PROJECTION_ROW = sql.load("projection_row")
_ENSURE_PARTITIONS = sql.load("ensure_partitions")
_DECLARE_VERSION = sql.load("declare_version")
_VERSIONS = sql.load("versions")
_HEARTBEAT = sql.load("heartbeat")
_LIVE_WORKERS = sql.load("live_workers")
_LEAVE = sql.load("leave")


def default_worker_id() -> str:
    """`host:pid:random`: unique per process, readable in `ilji projections status`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class StoreOptions(TypedDict):
    """Keyword arguments of `PostgresEventStore.open` for a worker's store (`store_options`)."""

    min_size: int
    max_size: int
    idle_in_transaction_timeout_ms: int


def store_options(projections: Sequence[Projection], *, lease_ttl: float = 5.0) -> StoreOptions:
    """The pool a worker's store needs: `PostgresEventStore.open(url, **store_options(...))`.

    Three connections per partition (applying a batch, renewing its lease, a replay or a
    status query), twice the partitions for a rebuild running beside the serving version,
    at most 100. And an idle-in-transaction timeout of twice the lease TTL, so that a frozen
    worker's open transaction does not hold locks for long (transaction_guard.sql sets it for
    the runner's own transactions; this is the default for the other statements).
    """
    partitions = sum(p.partitions * 2 for p in projections)
    return StoreOptions(
        min_size=1,
        max_size=min(3 * partitions + 4, 100),
        idle_in_transaction_timeout_ms=int(max(lease_ttl * 2, 1.0) * 1000),
    )


async def register(store: PostgresEventStore, projection: Projection) -> None:
    """Declare `projection` in the database (idempotent); its version becomes active if new."""
    validate_projection(projection)
    async with store.database.connection() as conn:
        await conn.execute(
            _REGISTER,
            {
                "name": projection.name,
                "version": projection.version,
                "category": projection.category,
                "types": list(projection.types) if projection.types is not None else None,
            },
        )


class Worker:
    """Runs projections on `store` until `stop()`; see the module docstring."""

    def __init__(
        self,
        store: PostgresEventStore,
        projections: Sequence[Projection],
        *,
        worker_id: str | None = None,
        lease_ttl: float = 5.0,
        poll_interval: float = 1.0,
        control_interval: float = 1.0,
    ) -> None:
        if not isinstance(store, PostgresEventStore):
            raise TypeError(
                f"Worker needs an open PostgresEventStore, not {type(store).__name__}: "
                "PostgresEventStore.open(url, **store_options(projections)), closed after run()"
            )
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ValidationError("projections", f"names must be unique: {names}")
        for projection in projections:
            validate_projection(projection)
        if lease_ttl <= 0:
            raise ValidationError("lease_ttl", "must be > 0")
        self.store = store
        self.projections = list(projections)
        self.worker_id = worker_id or default_worker_id()
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.control_interval = control_interval
        self._runners: dict[tuple[str, int, int], PartitionRunner] = {}
        self._tasks: dict[tuple[str, int, int], asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._listener: Listener | None = None
        self._noted: dict[str, tuple[object, ...]] = {}
        self.balancer = Balancer(self._owned_partitions)
        #: What this worker's code does for each projection (see `ilji.projections.versions`).
        self.plans: dict[str, versions.VersionPlan] = {}
        #: Cutovers this worker performed (a metric).
        self.cutovers = 0

    def metrics(self) -> list[PartitionMetrics]:
        """Counters of every partition runner in this process (see `PartitionMetrics`)."""
        return [runner.metrics for runner in self._runners.values()]

    def owned(self) -> list[tuple[str, int, int]]:
        """(projection, version, partition) of the leases this worker holds right now."""
        return [key for key, runner in self._runners.items() if runner.metrics.owned]

    def _owned_partitions(self, name: str, version: int) -> list[int]:
        return [key[2] for key in self.owned() if key[0] == name and key[1] == version]

    async def stop(self) -> None:
        """Ask every runner to finish its batch and release its lease; `run()` then returns."""
        self._stopping.set()
        for runner in self._runners.values():
            runner.stop()

    async def run(self) -> None:
        """Run until `stop()` (the store stays open: its owner closes it)."""
        store = self.store
        self._listener = Listener(store.listen_conninfo)
        log.info(
            "worker starting",
            extra={"worker": self.worker_id, "projections": [p.name for p in self.projections]},
        )
        try:
            async with asyncio.TaskGroup() as group:
                for projection in self.projections:
                    group.create_task(self._control(store, projection), name=f"control {projection.name}")
        finally:
            # Stop counting as a live worker first, so the others' shares grow as our
            # partitions are released below.
            try:
                async with store.database.connection(timeout=2.0) as conn:
                    await conn.execute(_LEAVE, {"worker": self.worker_id})
            except Exception as exc:  # our heartbeats just expire
                log.warning(
                    "could not deregister the worker", extra={"worker": self.worker_id, "error": str(exc)}
                )
            for runner in self._runners.values():
                runner.stop()
            tasks = list(self._tasks.values())
            if tasks:
                await asyncio.wait(tasks, timeout=self.lease_ttl)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._listener.close()
            log.info("worker stopped", extra={"worker": self.worker_id})

    async def _control(self, store: PostgresEventStore, projection: Projection) -> None:
        """Keep the right runners going for one projection; cut over finished rebuilds."""
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                await self._control_once(store, projection)
                backoff.reset()
                delay = self.control_interval
            except Exception as exc:
                # Keep the projection's runners going whatever happens here; a bug shows in
                # the log (with its traceback) rather than stopping every projection.
                log.log(
                    logging.WARNING if is_infrastructure_error(exc) else logging.ERROR,
                    "projection control failed, retrying",
                    extra={"projection": projection.name, "worker": self.worker_id, "error": str(exc)},
                    exc_info=not is_infrastructure_error(exc),
                )
                delay = backoff.next()
            # Heartbeats must come more often than the lease TTL (see heartbeat.sql).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), min(delay, self.lease_ttl / 3))

    async def _control_once(self, store: PostgresEventStore, projection: Projection) -> None:
        await register(store, projection)
        name = projection.name
        async with store.database.connection() as conn:
            cur = await conn.execute(_PROJECTION_ROW, {"name": name})
            row = await cur.fetchone()
            assert row is not None
            active, requested, _paused = row
            stored = await self._stored_versions(conn, name)
            chosen = versions.plan(projection, active, requested, stored)
            if chosen.create:
                # First to need these versions: create their rows (this code's count), then
                # plan again with what is stored, which a faster worker may have decided.
                for version in chosen.create:
                    await conn.execute(
                        _DECLARE_VERSION,
                        {
                            "name": name,
                            "version": version,
                            "partitions": projection.partitions,
                            "code_version": projection.version,
                        },
                    )
                stored = await self._stored_versions(conn, name)
                chosen = versions.plan(projection, active, requested, stored)
            self.plans[name] = chosen
            self._note(projection, chosen, active, stored)
            await conn.execute(
                _HEARTBEAT,
                {
                    "name": name,
                    "worker": self.worker_id,
                    "code_version": projection.version,
                    "versions": list(chosen.run),
                    "state": chosen.state,
                    "error": chosen.error,
                },
            )
            cur = await conn.execute(_LIVE_WORKERS, {"name": name, "window": self.lease_ttl * 0.8})
            self.balancer.set_live_workers(name, {int(v): int(n) for v, n in await cur.fetchall()})
            for version in chosen.run:
                await conn.execute(_ENSURE_PARTITIONS, {"name": name, "version": version})
        for version in chosen.run:
            self.balancer.set_partitions(name, version, stored[version].partitions)
            for partition in range(stored[version].partitions):
                self._start(store, projection, version, partition)
        # Runners of versions this code no longer runs (retired by a cutover, or refused) stop;
        # finished ones are forgotten.
        for key, runner in self._runners.items():
            if key[0] == name and key[1] not in chosen.run:
                runner.stop()
        for key, task in list(self._tasks.items()):
            if key[0] == name and task.done():
                if not task.cancelled() and task.exception() is not None:
                    log.error(
                        "partition runner crashed; restarting",
                        extra={"projection": key[0], "version": key[1], "partition": key[2]},
                        exc_info=task.exception(),
                    )
                del self._tasks[key]
                del self._runners[key]
        target = chosen.target
        if (
            target is not None
            and target > active
            and await cutover(store, name, active, target, stored[target].partitions)
        ):
            self.cutovers += 1

    @staticmethod
    async def _stored_versions(conn: Connection, name: str) -> dict[int, versions.StoredVersion]:
        cur = await conn.execute(_VERSIONS, {"name": name})
        return {int(v): versions.StoredVersion(int(n), code) for v, n, code in await cur.fetchall()}

    def _note(
        self,
        projection: Projection,
        chosen: versions.VersionPlan,
        active: int,
        stored: dict[int, versions.StoredVersion],
    ) -> None:
        """Log what this code does for the projection when that changes (not every round)."""
        key = (chosen.state, chosen.run, chosen.error)
        if self._noted.get(projection.name) == key:
            return
        self._noted[projection.name] = key
        extra = {
            "projection": projection.name,
            "worker": self.worker_id,
            "code_version": projection.version,
            "active": active,
            "versions": list(chosen.run),
            "state": chosen.state,
        }
        if chosen.error is not None:
            log.error("projection version refused", extra={**extra, "error": chosen.error})
        elif chosen.state == "idle":
            built_by = stored[active].code_version if active in stored else None
            log.info(
                "code older than the serving version's: taking no leases of this projection",
                extra={**extra, "serving_code_version": built_by},
            )
        else:
            log.info("running projection versions", extra=extra)

    def _start(self, store: PostgresEventStore, projection: Projection, version: int, partition: int) -> None:
        key = (projection.name, version, partition)
        if key in self._tasks or self._stopping.is_set():
            return
        assert self._listener is not None
        runner = PartitionRunner(
            store,
            self._listener,
            projection,
            version=version,
            partition=partition,
            worker_id=self.worker_id,
            lease_ttl=self.lease_ttl,
            poll_interval=self.poll_interval,
            balancer=self.balancer,
        )
        self._runners[key] = runner
        self._tasks[key] = asyncio.get_running_loop().create_task(runner.run(), name=f"run {runner.label}")

    def __repr__(self) -> str:
        return f"Worker(id={self.worker_id!r}, projections={[p.name for p in self.projections]})"
