"""The store contract suite and the follower tests again, through PgBouncer in transaction pooling.

The tests are the same functions as in test_store_contract.py and test_global_log_concurrency.py
(collected again here); this module only changes where they connect: `database_url` is the
module's database reached through a real PgBouncer (`pool_mode = transaction`, and startup
`options` refused), and every store is opened with `pooled=True`, as `ILJI_DATABASE_POOLED`
does. Writers that hold transactions open on purpose connect directly, as another application
would; everything Ilji does goes through the pooler.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import psycopg
import pytest

import tests.integration.test_global_log_concurrency as follower_tests
import tests.integration.test_store_contract as contract_tests
from ilji import EventStore, NewEvent, PostgresEventStore
from ilji.embedded import EmbeddedPostgres
from ilji.store import sql
from tests.conftest import new_database, through
from tests.servers import PgBouncer

# Replaced below: the first EXPLAINs on a bare pool connection, outside the store's reads; the
# second's slow writers are psycopg connections that prepare statements (run directly here).
_NOT_AGAIN = {
    "test_global_and_category_reads_use_an_ordered_index_scan",
    "test_follower_sees_every_event_exactly_once_with_out_of_order_commits",
}
for _module in (contract_tests, follower_tests):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and _name not in _NOT_AGAIN:
            globals()[_name] = _test

_open = PostgresEventStore.open.__func__  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def direct_url(pg_server: EmbeddedPostgres) -> str:
    """The module's database, reached directly."""
    return new_database(pg_server)


@pytest.fixture(scope="module")
def database_url(direct_url: str, pgbouncer: PgBouncer) -> str:
    """The module's database through PgBouncer: what the reused tests connect to."""
    return through(pgbouncer, direct_url)


@pytest.fixture(autouse=True)
def pooled_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every store these tests open is told it is behind a transaction pooler."""

    def open_pooled(cls: type[PostgresEventStore], conninfo: str, **kwargs: Any) -> Any:
        kwargs.setdefault("pooled", True)
        return _open(cls, conninfo, **kwargs)

    monkeypatch.setattr(PostgresEventStore, "open", classmethod(open_pooled))


@pytest.fixture
async def any_store(database_url: str) -> AsyncIterator[EventStore]:
    """The contract suite's store: PostgreSQL only (the in-memory twin has no pooler to pass)."""
    s = await PostgresEventStore.open(database_url, max_size=5, poll_interval=0.2)
    try:
        yield s
    finally:
        await s.close()


@pytest.mark.slow
async def test_follower_through_pgbouncer_sees_every_event_exactly_once(
    database_url: str, direct_url: str
) -> None:
    await follower_tests.run_once(database_url, seed=random.randrange(2**32), writer_url=direct_url)


async def test_session_settings_hold_without_startup_options(database_url: str, direct_url: str) -> None:
    """Timestamps stay UTC, admin transactions carry their idle timeout, and pages plan an
    ordered index scan, although PgBouncer passes no startup options."""
    async with await PostgresEventStore.open(database_url, max_size=3) as store:
        stream = f"plan-{uuid.uuid4().hex[:8]}"
        for _ in range(5):
            await store.append(stream, [NewEvent("Tick", {"i": i}) for i in range(50)])
        # Many transactions later, on whichever server connection PgBouncer lends.
        for _ in range(20):
            [event] = await store.read_stream(stream, 1, 1)
            assert event.recorded_at.tzinfo is UTC
        async with store.database.connection() as conn:
            async with conn.transaction():
                await conn.execute(sql.load("read_planner"))
                cur = await conn.execute(
                    b"EXPLAIN (ANALYZE, FORMAT JSON) " + sql.load("read_category"),
                    {"category": "plan", "after": 0, "limit": 10, "types": None},
                )
                [(plan,)] = await cur.fetchall()
            [scan] = [p for p in plan[0]["Plan"]["Plans"] if p["Parent Relationship"] == "Outer"]
            assert scan["Node Type"] == "Index Scan"
            # Outside that transaction the server's default applies again: nothing leaked.
            cur = await conn.execute("SHOW enable_bitmapscan")
            assert await cur.fetchone() == ("on",)
    # The old way, startup options, is what PgBouncer refuses.
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        await psycopg.AsyncConnection.connect(database_url, options="-c enable_bitmapscan=off")


async def test_followers_poll_without_a_listen_url_and_wake_with_one(
    database_url: str, direct_url: str
) -> None:
    """LISTEN needs a session: behind the pooler a follower polls, or listens on a direct URL."""
    for listen in (None, direct_url):
        category = f"pb{uuid.uuid4().hex[:10]}"
        got: list[str] = []
        async with await PostgresEventStore.open(
            database_url, max_size=3, poll_interval=0.1, listen_conninfo=listen
        ) as store:
            assert store.listen_conninfo == listen

            async def follow(
                store: PostgresEventStore = store, category: str = category, got: list[str] = got
            ) -> None:
                async for event in store.follow(0, category=category):
                    got.append(event.type)
                    if len(got) == 3:
                        return

            task = asyncio.create_task(follow())
            for i in range(3):
                await store.append(f"{category}-1", [NewEvent(f"E{i}", {})])
            await asyncio.wait_for(task, 20)
            assert got == ["E0", "E1", "E2"]
