"""Snapshots and lifecycle rules: a snapshot folded under other rules is never trusted.

The scenarios of issue 13 (a snapshot folded while events were hidden, used after they are
shown again; a snapshot from before a truncation, used after it) run on PostgreSQL and on the
in-memory twin; the property of tests/unit/test_app_snapshot_lifecycle_property.py runs on
PostgreSQL here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from ilji import MemoryEventStore, NewEvent, PostgresEventStore
from ilji.app import Repository
from ilji.domain.events import RecordedEvent
from ilji.store import sql
from ilji.store.snapshots import MemorySnapshotStore, PostgresSnapshotStore, SnapshotStore
from tests.unit.test_app_repository import Add, Added, Tally, tally_decider
from tests.unit.test_app_snapshot_lifecycle_property import (
    Step,
    Store,
    check_history,
    histories,
    lifecycle_tally_type,
)

Setup = tuple[Store, SnapshotStore]


@pytest.fixture(params=["postgres", "memory"])
async def stores(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Setup]:
    if request.param == "memory":
        yield MemoryEventStore(), MemorySnapshotStore()
        return
    s = await PostgresEventStore.open(database_url, max_size=5, notify=False)
    try:
        yield s, PostgresSnapshotStore(s.database)
    finally:
        await s.close()


async def replayed(store: Store, tallies: Repository[Add, Any, Tally], entity: str) -> Tally:
    visible = await store.read_stream(tallies.stream(entity), 1, 10_000)
    return tally_decider.fold(tallies.type.events.decode(e) for e in visible)  # type: ignore[misc]


async def test_a_snapshot_folded_while_truncated_is_not_used_after_untruncating(stores: Setup) -> None:
    store, snapshots = stores
    tallies = Repository(store, lifecycle_tally_type(every=2), snapshots=snapshots)
    entity = uuid.uuid4().hex
    stream = tallies.stream(entity)
    for _ in range(9):
        await tallies.handle(entity, Add(3))  # snapshots at 2, 4, 6, 8
    await store.truncate_stream(stream, 9)  # the snapshot at 8 is hidden: fold from 9
    for _ in range(3):
        await tallies.handle(entity, Add(3))  # a snapshot at 10 folded from 9 and 10 only
    assert (await tallies.load(entity)).state.total == 12
    await store.truncate_stream(stream, 1)
    loaded = await tallies.load(entity)
    assert loaded.state == await replayed(store, tallies, entity)
    assert (loaded.version, loaded.state.total) == (12, 36)
    # The next command is decided on the whole stream, and leaves a snapshot that is right.
    result = await tallies.handle(entity, Add(-36))
    assert (result.version, result.state.total) == (13, 0)
    assert (await tallies.load(entity)).state.total == 0


async def test_a_snapshot_folded_while_deleted_is_not_used_after_a_restore(stores: Setup) -> None:
    store, snapshots = stores
    tallies = Repository(store, lifecycle_tally_type(every=2), snapshots=snapshots)
    entity = uuid.uuid4().hex
    stream = tallies.stream(entity)
    for _ in range(9):
        await tallies.handle(entity, Add(3))
    await store.delete_stream(stream)
    await store.append(stream, [tallies.type.events.encode(Added(3))])  # revives it as version 10
    for _ in range(3):
        await tallies.handle(entity, Add(3))  # snapshots at 11 and 12, folded from 10
    assert (await tallies.load(entity)).state.total == 12
    await store.restore_stream(stream)
    loaded = await tallies.load(entity)
    assert (loaded.version, loaded.state.total) == (13, 39)
    assert loaded.state == await replayed(store, tallies, entity)


async def test_a_snapshot_from_before_a_truncation_does_not_bring_hidden_events_back(
    stores: Setup,
) -> None:
    store, snapshots = stores
    tallies = Repository(store, lifecycle_tally_type(every=5), snapshots=snapshots)
    entity = uuid.uuid4().hex
    for amount in range(1, 8):
        await tallies.handle(entity, Add(amount))  # a snapshot at 5 of 1..5
    await store.truncate_stream(tallies.stream(entity), 3)
    loaded = await tallies.load(entity)
    assert (loaded.version, loaded.state.total, loaded.state.amounts) == (7, 25, (3, 4, 5, 6, 7))


async def test_relaxing_or_clearing_a_retention_rule_shows_the_events_in_the_next_load(
    stores: Setup,
) -> None:
    store, snapshots = stores
    tallies = Repository(store, lifecycle_tally_type(every=2), snapshots=snapshots)
    category = tallies.type.category
    entity = uuid.uuid4().hex
    await store.set_retention(category, max_count=2)
    for _ in range(6):
        await tallies.handle(entity, Add(1))  # each snapshot folds only the newest events
    assert (await tallies.load(entity)).state.total == 2
    await store.set_retention(category, max_count=4)
    assert (await tallies.load(entity)).state.total == 4
    await store.clear_retention(category)
    loaded = await tallies.load(entity)
    assert (loaded.version, loaded.state.total) == (6, 6)


async def test_relaxing_an_age_rule_shows_the_old_events_again() -> None:
    now = [datetime.now(UTC)]
    store, snapshots = MemoryEventStore(clock=lambda: now[0]), MemorySnapshotStore()
    tallies = Repository(store, lifecycle_tally_type(every=2), snapshots=snapshots)
    entity = uuid.uuid4().hex
    for _ in range(4):
        await tallies.handle(entity, Add(1))
    now[0] += timedelta(hours=2)
    for _ in range(4):
        await tallies.handle(entity, Add(1))
    await store.set_retention(tallies.type.category, max_age_seconds=3600)
    assert (await tallies.load(entity)).state.total == 4  # stores a snapshot folded from 5
    for _ in range(2):
        await tallies.handle(entity, Add(1))
    await store.set_retention(tallies.type.category, max_age_seconds=3 * 3600)
    loaded = await tallies.load(entity)
    assert (loaded.version, loaded.state.total) == (10, 10)


class TruncatingMidFold(MemoryEventStore):
    """Truncates its stream while a fold is between two pages, as an admin might."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Callable[[], Any] | None = None

    async def read_stream(self, *args: Any, **kwargs: Any) -> list[RecordedEvent]:
        page = await super().read_stream(*args, **kwargs)
        if self.hook is not None and page:
            hook, self.hook = self.hook, None
            await hook()
        return page


async def test_a_fold_that_saw_a_rule_change_between_pages_is_not_kept_as_a_snapshot() -> None:
    store, snapshots = TruncatingMidFold(), MemorySnapshotStore()
    aggregate = lifecycle_tally_type(every=3)
    writer = Repository(store, aggregate)
    entity = uuid.uuid4().hex
    stream = writer.stream(entity)
    for amount in range(1, 7):
        await writer.handle(entity, Add(amount))
    tallies = Repository(store, aggregate, snapshots=snapshots, page_size=2)
    store.hook = lambda: store.truncate_stream(stream, 5)
    # Versions 1 and 2, then 5 and 6: what was visible at no single moment.
    assert (await tallies.load(entity)).state.amounts == (1, 2, 5, 6)
    assert len(snapshots) == 0
    await store.truncate_stream(stream, 1)
    assert (await tallies.load(entity)).state.total == 21


async def test_the_migration_dropped_snapshots_that_do_not_say_what_they_folded(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'ilji' AND table_name = 'snapshots' AND column_name = 'first_version'"
        )
        assert await cur.fetchone() == ("NO",)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories)
def test_load_equals_a_full_replay_whatever_the_lifecycle_rules_did_on_postgres(
    database_url: str, history: list[Step]
) -> None:
    async def check() -> None:
        async with await PostgresEventStore.open(database_url, max_size=2, notify=False) as s:
            await check_history(s, PostgresSnapshotStore(s.database), history, every=2)

    asyncio.run(check())


async def test_reading_a_truncated_stream_from_version_1_skips_its_hidden_prefix(database_url: str) -> None:
    """Every full load and every snapshot check reads from version 1: the hidden prefix of a
    truncated stream is skipped by the index scan, not filtered out row by row."""
    async with await PostgresEventStore.open(database_url, max_size=2, notify=False) as s:
        stream = f"prefix-{uuid.uuid4().hex}"
        await s.append(stream, [NewEvent("Happened", {"i": i}) for i in range(300)])
        await s.truncate_stream(stream, 299)
        async with s.database.connection() as conn:
            cur = await conn.execute(
                b"EXPLAIN (ANALYZE, FORMAT JSON) " + sql.load("read_stream_forward"),
                {"stream": stream, "from_version": 1, "limit": 1},
            )
            [(plan,)] = await cur.fetchall()
        assert [e.version for e in await s.read_stream(stream, 1, 10)] == [299, 300]

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]

    [scan] = [
        n for n in nodes(plan[0]["Plan"]) if n.get("Relation Name") == "events" and n.get("Alias") == "e"
    ]
    per_event = [p for p in scan.get("Plans", []) if p["Parent Relationship"] == "SubPlan"]
    # One row looked at, and each per-event rule check ran at most once (for that row).
    assert scan["Actual Rows"] == 1
    assert all(p["Actual Loops"] <= 1 for p in per_event)
