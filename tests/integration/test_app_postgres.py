"""The application layer on PostgreSQL: handling, retries, snapshots, upcasting, temporal queries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilji import NewEvent, PostgresEventStore
from ilji.app import CommandContext, DataclassStateCodec, Repository
from ilji.store.snapshots import PostgresSnapshotStore, Snapshot
from tests.unit.test_app_repository import Add, Added, Tally, new_id, tally_decider, tally_type


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[PostgresEventStore]:
    s = await PostgresEventStore.open(database_url, max_size=10, poll_interval=0.2)
    try:
        yield s
    finally:
        await s.close()


async def test_handle_round_trips_events_and_metadata(pg: PostgresEventStore) -> None:
    tallies = Repository(pg, tally_type())
    entity = new_id()
    context = CommandContext(user="ann")
    await tallies.handle(entity, Add(3), context)
    await tallies.handle(entity, Add(-1), context)
    loaded = await tallies.load(entity)
    assert (loaded.version, loaded.state) == (2, Tally(2, 2, (3, -1)))
    stored = await pg.read_stream(tallies.stream(entity))
    assert [e.metadata["command_id"] for e in stored] == [str(context.command_id)] * 2
    assert all(e.metadata["user"] == "ann" and e.metadata["schema_version"] == 1 for e in stored)


async def test_concurrent_commands_on_one_stream_all_land_through_retries(database_url: str) -> None:
    # Three stores = three pools: writers really race on separate connections.
    stores = [await PostgresEventStore.open(database_url, max_size=8) for _ in range(3)]
    try:
        entity = new_id()
        repos = [Repository(s, tally_type(), max_retries=100) for s in stores]
        results = await asyncio.gather(*(repos[i % 3].handle(entity, Add(1)) for i in range(40)))
        assert sorted(r.version for r in results) == list(range(1, 41))
        assert max(r.attempts for r in results) > 1  # somebody lost a race and retried
        assert (await repos[0].load(entity)).state.total == 40
    finally:
        for s in stores:
            await s.close()


async def test_snapshot_store_saves_finds_and_deletes(pg: PostgresEventStore) -> None:
    snapshots = PostgresSnapshotStore(pg.database)
    stream = f"tally-{new_id()}"
    ids = [uuid.uuid4() for _ in range(3)]
    for version, event_id in zip((2, 4, 6), ids, strict=True):
        await snapshots.save(Snapshot(stream, "Tally", 1, version, event_id, {"total": version}))
    await snapshots.save(Snapshot(stream, "Tally", 2, 8, ids[0], {"total": 8}))
    latest = await snapshots.latest(stream, "Tally", 1)
    assert latest is not None
    assert (latest.version, latest.event_id, dict(latest.state)) == (6, ids[2], {"total": 6})
    assert latest.taken_at is not None
    below = await snapshots.latest(stream, "Tally", 1, max_version=5)
    assert below is not None and below.version == 4
    assert await snapshots.latest(stream, "Tally", 3) is None
    await snapshots.save(Snapshot(stream, "Tally", 1, 6, ids[1], {"total": 60}))  # replaces
    replaced = await snapshots.latest(stream, "Tally", 1)
    assert replaced is not None and (replaced.event_id, replaced.state["total"]) == (ids[1], 60)
    assert await snapshots.delete(stream, "Other") == 0
    assert await snapshots.delete(stream) == 4
    assert await snapshots.latest(stream, "Tally", 1) is None


async def test_snapshots_on_postgres_are_used_ignored_and_deletable(pg: PostgresEventStore) -> None:
    snapshots = PostgresSnapshotStore(pg.database)
    tallies = Repository(pg, tally_type(every=5), snapshots=snapshots)
    entity = new_id()
    stream = tallies.stream(entity)
    await pg.append(stream, [tally_type().events.encode(Added(1)) for _ in range(12)])
    first = await tallies.load(entity)  # a long tail: stores a snapshot at version 12
    second = await tallies.load(entity)
    assert (first.snapshot_version, second.snapshot_version, second.events_folded) == (0, 12, 0)
    for _ in range(4):
        await tallies.handle(entity, Add(1))  # crosses 15: a snapshot at version 15
    loaded = await tallies.load(entity)
    assert (loaded.version, loaded.snapshot_version, loaded.state.total) == (16, 15, 16)
    # A new state schema ignores every old snapshot and rebuilds from events.
    v2 = Repository(pg, tally_type(every=1000, schema_version=2), snapshots=snapshots)
    rebuilt = await v2.load(entity)
    assert (rebuilt.snapshot_version, rebuilt.state) == (0, loaded.state)
    # A snapshot whose anchor event is not the stream's is never used.
    codec = DataclassStateCodec(Tally)
    await snapshots.save(Snapshot(stream, "Tally", 1, 16, uuid.uuid4(), codec.encode(Tally(999))))
    assert (await tallies.load(entity)).state.total == 16
    assert await snapshots.delete(stream) >= 3
    assert (await tallies.load(entity)).state == loaded.state


async def test_old_rows_are_upcast_on_read_and_never_rewritten(pg: PostgresEventStore) -> None:
    from ilji.examples.conference.domain import CreateConference, repository

    conferences = repository(pg)
    conference_id = new_id()
    await conferences.handle(conference_id, CreateConference("PyCon", 5))
    stream = conferences.stream(conference_id)
    await pg.append(
        stream, [NewEvent("SeatsReserved", {"reservation_id": "r1", "seats": 2}, {"schema_version": 1})]
    )
    await pg.append(stream, [NewEvent("SeatsReserved", {"reservation_id": "r2", "seats": 1})])
    assert (await conferences.load(conference_id)).state.reservations == {"r1": 2, "r2": 1}
    raw = await pg.read_stream(stream, 2)
    assert [e.data for e in raw] == [
        {"reservation_id": "r1", "seats": 2},
        {"reservation_id": "r2", "seats": 1},
    ]


async def test_state_as_of_a_recorded_time(pg: PostgresEventStore) -> None:
    tallies = Repository(pg, tally_type())
    entity = new_id()
    for amount in (1, 2, 3):
        await tallies.handle(entity, Add(amount))
        await asyncio.sleep(0.01)
    stored = await pg.read_stream(tallies.stream(entity))
    second = stored[1].recorded_at
    as_of = await tallies.state_at(entity, at=second)
    assert (as_of.version, as_of.state.total) == (2, 3)
    assert (await tallies.state_at(entity, at=second - timedelta(microseconds=1))).version == 1
    assert (await tallies.state_at(entity, at=stored[0].recorded_at - timedelta(seconds=1))).version == 0
    history = await tallies.history(entity)
    assert [(h.recorded.version, h.state.total) for h in history] == [(1, 1), (2, 3), (3, 6)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amounts=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40),
    every=st.integers(min_value=1, max_value=10),
    cut=st.integers(min_value=0),
)
def test_snapshot_plus_tail_equals_full_replay_on_postgres(
    database_url: str, amounts: list[int], every: int, cut: int
) -> None:
    async def check() -> None:
        async with await PostgresEventStore.open(database_url, max_size=2, notify=False) as s:
            snapshots = PostgresSnapshotStore(s.database)
            tallies = Repository(s, tally_type(every=every), snapshots=snapshots)
            entity = new_id()
            for amount in amounts:
                await tallies.handle(entity, Add(amount))
            expected = tally_decider.fold(Added(a) for a in amounts)
            assert (await tallies.load(entity)).state == expected
            version = cut % (len(amounts) + 1)
            prefix = tally_decider.fold(Added(a) for a in amounts[:version])
            assert (await tallies.state_at(entity, version=version)).state == prefix

    asyncio.run(check())
