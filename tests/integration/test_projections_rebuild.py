"""Rebuilds without downtime: version 2 builds beside version 1 under appends, then cuts over."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import psycopg
import pytest

from ilji import PostgresEventStore
from ilji.projections import (
    RebuildProgress,
    Worker,
    rebuild_progress,
    request_rebuild,
    status,
    store_options,
    wait_for_position,
)
from tests.e2e.worker_fixtures import append_events, ledger, verify_ledger


async def log_head(store: PostgresEventStore) -> int:
    async with store.database.connection() as conn:
        cur = await conn.execute("SELECT max(position) FROM ilji.events")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.slow
async def test_rebuild_under_appends_cuts_over_without_gaps_or_duplicates(
    store: PostgresEventStore, database_url: str
) -> None:
    name, pre = f"rb_{uuid.uuid4().hex[:6]}", f"rb{uuid.uuid4().hex[:8]}"
    await append_events(store, 15_000, streams=100, per_append=50, prefix=pre)
    projections = [ledger(name, batch_size=500)]
    worker_db = await PostgresEventStore.open(database_url, **store_options(projections, lease_ttl=1.5))
    worker = Worker(
        worker_db,
        projections,
        worker_id="w",
        lease_ttl=1.5,
        poll_interval=0.1,
        control_interval=0.2,
    )
    run = asyncio.create_task(worker.run())
    stop_appending = asyncio.Event()
    reads: list[tuple[int, int]] = []

    async def appender() -> None:
        while not stop_appending.is_set():
            await append_events(store, 20, streams=10, per_append=5, prefix=pre)
            await asyncio.sleep(0.01)

    async def reader() -> None:
        # What an API does: look up the active version, read its table, in one snapshot.
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            while True:
                async with conn.transaction():
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cur = await conn.execute(
                        "SELECT active_version FROM ilji.projections WHERE name = %s", (name,)
                    )
                    row = await cur.fetchone()
                    if row is not None:
                        with contextlib.suppress(psycopg.errors.UndefinedTable):
                            async with conn.transaction():
                                cur = await conn.execute(f'SELECT count(*) FROM "{name}_applied_v{row[0]}"')
                                count = await cur.fetchone()
                                assert count is not None
                                reads.append((row[0], count[0]))
                await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(appender()), asyncio.create_task(reader())]
    try:
        # Version 1 catches up and serves.
        await wait_for_position(store, name, await log_head(store), timeout=20)
        (before,) = await status(store, name)
        assert before.active_version == 1
        version = await request_rebuild(store, name)
        assert version == 2
        progress: list[RebuildProgress] = []
        async with asyncio.timeout(60):
            async for item in rebuild_progress(store, name, interval=0.1):
                progress.append(item)
        assert progress[-1].done and progress[-1].version == 2
        (after,) = await status(store, name, all_versions=True)
        assert after.active_version == 2
        stop_appending.set()
        await tasks[0]
        await wait_for_position(store, name, await log_head(store), timeout=20)
    finally:
        stop_appending.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await worker.stop()
        await run
        await worker_db.close()
    summary = verify_ledger(database_url, name, version=2, prefix=pre)
    assert summary["events"] > 15_000
    versions = [v for v, _ in reads]
    assert versions[0] == 1 and versions[-1] == 2, "the old version served until the cutover"
    assert versions == sorted(versions), "readers never went back to the old version"
    counts = [c for _, c in reads]
    assert counts == sorted(counts), "the view never went back in time at the cutover"
    assert any(not p.done for p in progress)
    # The old version retired; the worker performed one cutover.
    (final,) = await status(store, name, all_versions=True)
    assert worker.cutovers == 1
    assert final.rebuilding == []
    assert [p.state for p in final.retired] == ["retired"]
    async with store.database.connection() as conn:
        cur = await conn.execute(
            "SELECT version, status FROM ilji.projection_checkpoints WHERE projection = %s ORDER BY version",
            (name,),
        )
        assert await cur.fetchall() == [(1, "retired"), (2, "stopped")]
