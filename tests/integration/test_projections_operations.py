"""Operating projections (issue 13): changing the partition count, replaying parked events of
`$` categories, handler errors that are `OperationalError`s, and what parked errors keep.

Each test runs workers in this process against a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg

from ilji import PostgresEventStore
from ilji.projections import Worker, list_parked, status, wait_for_position
from ilji.server.metrics import _ProjectionCollector
from ilji.server.models import projection_json
from tests.e2e.worker_fixtures import append_events, ledger, verify_ledger


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 15)


async def until(predicate: Callable[[], Any], within: float = 20.0) -> None:
    """Poll an async predicate until it is true (TimeoutError when it never is)."""
    async with asyncio.timeout(within):
        for _ in itertools.count():
            if await predicate():
                return
            await asyncio.sleep(0.05)


async def rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(query, params)  # type: ignore[arg-type]
        return await cur.fetchall()


async def checkpoints(database_url: str, name: str) -> list[tuple[Any, ...]]:
    """(version, partition, partitions, events_applied) of every checkpoint row."""
    return await rows(
        database_url,
        "SELECT version, partition, partitions, events_applied FROM ilji.projection_checkpoints"
        " WHERE projection = %s ORDER BY version, partition",
        name,
    )


async def test_another_partition_count_for_an_existing_version_is_refused(
    store: PostgresEventStore, database_url: str
) -> None:
    """Item 1: 1 -> 4 partitions on the same version used to apply events twice."""
    name, pre = f"split_{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:8]}"
    last = await append_events(store, 60, streams=20, per_append=3, prefix=pre)
    options = {"lease_ttl": 1.5, "poll_interval": 0.1, "control_interval": 0.1}
    async with running(Worker(database_url, [ledger(name)], worker_id="one", **options)):  # type: ignore[arg-type]
        await wait_for_position(store, name, last, timeout=20)
    assert await checkpoints(database_url, name) == [(1, 0, 1, 60)]

    # The same version with another count: refused, and nothing of version 1 changes.
    four = Worker(database_url, [ledger(name, partitions=4)], worker_id="four", **options)  # type: ignore[arg-type]
    async with running(four):

        async def refused_or_split() -> bool:
            if len(await checkpoints(database_url, name)) > 1:
                return True
            (st,) = await status(store, name)
            return any(w.error for w in getattr(st, "workers", ()))

        await until(refused_or_split)
        assert await checkpoints(database_url, name) == [(1, 0, 1, 60)]
        (st,) = await status(store, name)
        (me,) = [w for w in st.workers if w.worker == "four"]
        assert me.state == "refused"
        assert me.error is not None and "4 partitions" in me.error and "1 partition" in me.error
        assert "version" in me.error
        assert st.owners == []
        # The same error over HTTP, and the refusing worker in the metrics.
        assert projection_json(st)["errors"] == [me.error]
        collector = _ProjectionCollector()
        collector.snapshot = [st]
        (family,) = [m for m in collector.collect() if m.name == "ilji_projection_workers"]
        assert [(s.labels, s.value) for s in family.samples] == [
            ({"projection": name, "code_version": "1", "state": "refused"}, 1.0)
        ]
    assert await list_parked(store, name) == []
    assert verify_ledger(database_url, name, prefix=pre)["events"] == 60

    # Changing the count is a new version: built beside version 1, whose rows it never touches.
    last = await append_events(store, 40, streams=20, per_append=2, prefix=pre)
    v2 = ledger(name, partitions=4, version=2)
    async with running(Worker(database_url, [v2], worker_id="v2", **options)):  # type: ignore[arg-type]

        async def cut_over() -> bool:
            (st,) = await status(store, name)
            return st.active_version == 2

        await until(cut_over)
        await wait_for_position(store, name, last, timeout=20)
    found = await checkpoints(database_url, name)
    assert found[0] == (1, 0, 1, 60), "the serving version's row was not touched"
    assert [(v, p, n) for v, p, n, _ in found[1:]] == [(2, k, 4) for k in range(4)]
    assert verify_ledger(database_url, name, version=2, prefix=pre)["events"] == 100
    assert await list_parked(store, name) == []
