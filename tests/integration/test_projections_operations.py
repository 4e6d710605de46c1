"""Operating projections (issue 13): changing the partition count, replaying parked events of
`$` categories, handler errors that are `OperationalError`s, and what parked errors keep.

Each test runs workers in this process against a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from ilji import NewEvent, PostgresEventStore, RecordedEvent
from ilji.projections import (
    Connection,
    Context,
    Projection,
    list_parked,
    register,
    replay_parked,
    request_rebuild,
    status,
    wait_for_position,
)
from ilji.projections.shapes import projection_json
from ilji.server.metrics import _ProjectionCollector
from tests.e2e.worker_fixtures import append_events, ledger, running_on, verify_ledger


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
    store: PostgresEventStore, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 1: 1 -> 4 partitions on the same version used to apply events twice."""
    name, pre = f"split_{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:8]}"
    last = await append_events(store, 60, streams=20, per_append=3, prefix=pre)
    options = {"lease_ttl": 1.5, "poll_interval": 0.1, "control_interval": 0.1}
    async with running_on(database_url, [ledger(name)], worker_id="one", **options):
        await wait_for_position(store, name, last, timeout=20)
    assert await checkpoints(database_url, name) == [(1, 0, 1, 60)]

    # The same version with another count: refused, and nothing of version 1 changes.
    async with running_on(database_url, [ledger(name, partitions=4)], worker_id="four", **options):

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
        # `ilji projections status` shows the worker and the refusal.
        shown = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ilji.cli", "projections", "status", name, "--database-url", database_url],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        text = " ".join((shown.stdout + shown.stderr).split())
        assert f"{name}: worker four (code version 1) refused: runs nothing" in text
        assert "refused: projection" in text and "raise `version`" in text
        # The worker's log says it, with the reason.
        logged = [r for r in caplog.records if r.getMessage() == "projection version refused"]
        assert logged and logged[0].__dict__["error"] == me.error
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
    async with running_on(database_url, [v2], worker_id="v2", **options):

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


class Lifecycle(Projection):
    """Follows `$lifecycle`; fails on the events about `stream` while `broken`."""

    category = "$lifecycle"
    max_attempts = 2
    retry_delay = 0.01
    max_retry_delay = 0.01

    def __init__(self, name: str, stream: str) -> None:
        self.name = name  # type: ignore[misc]
        self.stream = stream
        self.broken = True

    async def setup(self, conn: Connection, ctx: Context) -> None:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {ctx.table(self.name)} (id uuid PRIMARY KEY, type text)"
        )

    async def handle(self, conn: Connection, event: RecordedEvent, ctx: Context) -> None:
        if self.broken and self.stream in str(event.data):
            raise ValueError("not handled yet")
        await conn.execute(
            f"INSERT INTO {ctx.table(self.name)} (id, type) VALUES (%s, %s)",  # type: ignore[arg-type]
            (event.id, event.type),
        )


async def test_parked_events_of_a_dollar_category_can_be_replayed(
    store: PostgresEventStore, database_url: str
) -> None:
    """Item 3: replay looked the event up in the global log, which leaves `$` streams out."""
    name, stream = f"lc_{uuid.uuid4().hex[:6]}", f"gone-{uuid.uuid4().hex[:8]}"
    projection = Lifecycle(name, stream)
    await store.append(stream, [NewEvent("Tick", {})])
    options = {"lease_ttl": 1.5, "poll_interval": 0.1, "control_interval": 0.1}
    async with running_on(database_url, [projection], worker_id="w", **options):
        await store.delete_stream(stream)

        async def parked() -> bool:
            return len(await list_parked(store, name)) == 1

        await until(parked)
        (event,) = await list_parked(store, name)
        assert (event.stream, event.type) == ("$lifecycle", "StreamDeleted")
        projection.broken = False
        assert await replay_parked(store, name) == 1

        async def replay_done() -> bool:
            (item,) = await list_parked(store, name, include_replayed=True)
            return item.replay_requested_at is None

        await until(replay_done)
    (item,) = await list_parked(store, name, include_replayed=True)
    assert item.error == "ValueError: not handled yet", item.error
    assert item.replayed_at is not None
    assert await rows(database_url, f"SELECT id, type FROM {name}_v1 WHERE id = %s", event.event_id) == [
        (event.event_id, "StreamDeleted")
    ]


class Timeouts(Projection):
    """Events marked `timeout` run into a statement timeout; those marked `drop` lose the
    connection once (the server ends the session); the others are counted."""

    max_attempts = 2
    retry_delay = 0.01
    max_retry_delay = 0.01

    def __init__(self, name: str, category: str) -> None:
        self.name = name  # type: ignore[misc]
        self.category = category  # type: ignore[misc]
        self.dropped: set[uuid.UUID] = set()

    async def setup(self, conn: Connection, ctx: Context) -> None:
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {ctx.table(self.name)} (id uuid PRIMARY KEY)")

    async def handle(self, conn: Connection, event: RecordedEvent, ctx: Context) -> None:
        if event.data.get("timeout"):
            await conn.execute("SET LOCAL statement_timeout = '20ms'")
            await conn.execute("SELECT pg_sleep(1)")
        if event.data.get("drop") and event.id not in self.dropped:
            self.dropped.add(event.id)
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        await conn.execute(f"INSERT INTO {ctx.table(self.name)} (id) VALUES (%s)", (event.id,))  # type: ignore[arg-type]


async def test_operational_errors_of_the_handler_are_parked_lost_connections_retried(
    store: PostgresEventStore, database_url: str
) -> None:
    """Item 4: a statement timeout in the handler used to be retried forever as infrastructure."""
    name, category = f"to_{uuid.uuid4().hex[:6]}", f"to{uuid.uuid4().hex[:8]}"
    projection = Timeouts(name, category)
    await store.append(f"{category}-a", [NewEvent("Tick", {}), NewEvent("Tick", {"timeout": True})])
    result = await store.append(f"{category}-b", [NewEvent("Tick", {"drop": True}), NewEvent("Tick", {})])
    options = {"lease_ttl": 1.5, "poll_interval": 0.1, "control_interval": 0.1}
    async with running_on(database_url, [projection], worker_id="w", **options):
        await wait_for_position(store, name, result.last_position, timeout=30)
    (parked,) = await list_parked(store, name)
    assert parked.stream == f"{category}-a" and parked.attempts == 2
    assert parked.error == "QueryCanceled: canceling statement due to statement timeout", parked.error
    assert len(projection.dropped) == 1, "the lost connection was retried, not counted"
    assert len(await rows(database_url, f"SELECT id FROM {name}_v1")) == 3


class People(Projection):
    """A read model with a unique e-mail column: a second person with the same e-mail fails."""

    max_attempts = 1

    def __init__(self, name: str, category: str) -> None:
        self.name = name  # type: ignore[misc]
        self.category = category  # type: ignore[misc]

    async def setup(self, conn: Connection, ctx: Context) -> None:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {ctx.table(self.name)} (id text PRIMARY KEY, email text UNIQUE)"
        )

    async def handle(self, conn: Connection, event: RecordedEvent, ctx: Context) -> None:
        await conn.execute(
            f"INSERT INTO {ctx.table(self.name)} (id, email) VALUES (%s, %s)",  # type: ignore[arg-type]
            (event.stream, event.data["email"]),
        )


async def test_parked_errors_keep_no_row_data_and_retired_versions_keep_none(
    store: PostgresEventStore, database_url: str
) -> None:
    """Item 10: psycopg's DETAIL (`Key (email)=(alice@...) already exists`) was stored."""
    name, category = f"pp_{uuid.uuid4().hex[:6]}", f"pp{uuid.uuid4().hex[:8]}"
    await store.append(f"{category}-1", [NewEvent("Joined", {"email": "alice@example.com"})])
    result = await store.append(f"{category}-2", [NewEvent("Joined", {"email": "alice@example.com"})])
    options = {"lease_ttl": 1.5, "poll_interval": 0.1, "control_interval": 0.1}
    async with running_on(database_url, [People(name, category)], worker_id="w", **options):
        await wait_for_position(store, name, result.last_position, timeout=20)
        (parked,) = await list_parked(store, name)
        assert "alice" not in parked.error and "DETAIL" not in parked.error, parked.error
        constraint = f"{name}_v1_email_key"
        assert (
            parked.error == f'UniqueViolation: duplicate key value violates unique constraint "{constraint}"'
        )
        # A rebuild (what the personal-data guide prescribes) retires version 1: its parked
        # errors are cleared.
        assert await request_rebuild(store, name) == 2

        async def cut_over() -> bool:
            (st,) = await status(store, name)
            return st.active_version == 2

        await until(cut_over)
    errors = await rows(
        database_url,
        "SELECT version, error FROM ilji.parked_events WHERE projection = %s ORDER BY version",
        name,
    )
    assert errors[0] == (1, "cleared: version retired by a rebuild")
    assert all("alice" not in e for _, e in errors)


async def test_only_the_serving_code_sets_what_the_projection_reads(
    store: PostgresEventStore, database_url: str
) -> None:
    """Lag and read-your-writes use the serving version's category and types, whatever code
    of another version (newer, building; older, idle) registers the projection."""
    name = f"reg_{uuid.uuid4().hex[:6]}"
    await register(store, ledger(name, types=["A"]))
    async with store.database.connection() as conn:
        await conn.execute(
            "INSERT INTO ilji.projection_versions (projection, version, partitions, code_version)"
            " VALUES (%s, 1, 1, 1)",
            (name,),
        )
    await register(store, ledger(name, version=2, types=["B"]))
    assert (await status(store, name))[0].types == ["A"]
    await register(store, ledger(name, types=["C"]))
    assert (await status(store, name))[0].types == ["C"]
