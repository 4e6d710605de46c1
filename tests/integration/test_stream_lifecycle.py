"""Stream lifecycle: soft delete, truncate-before, retention and the audit log.

Most tests run on PostgreSQL and on the in-memory twin alike; the last ones are about
PostgreSQL only (the rows stay stored, what a read costs, concurrent followers).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

from ilji import (
    MemoryEventStore,
    NewEvent,
    PostgresEventStore,
    StreamNotFound,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.embedded import EmbeddedPostgres
from ilji.store import sql
from ilji.store.audit import AUDIT_STREAM, LIFECYCLE_STREAM, Actor, token_fingerprint
from ilji.store.follow import Listener, follow_pages
from tests.conftest import new_database

Store = PostgresEventStore | MemoryEventStore

APPEND_MANY = sql.load("append_many")


class Clock:
    """A clock the memory twin reads, so a test can make its events old."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def category() -> str:
    return f"life{uuid.uuid4().hex[:10]}"


def events(n: int) -> list[NewEvent]:
    return [NewEvent("Happened", {"i": i}) for i in range(n)]


async def audit_for(store: Store, target: str) -> list[dict[str, Any]]:
    """The audit events about `target`, oldest first."""
    found = await store.read_stream(AUDIT_STREAM, limit=10_000)
    return [{"type": e.type, **e.data} for e in found if e.data["target"] == target]


async def lifecycle_for(store: Store, key: str, value: str) -> list[tuple[str, dict[str, Any]]]:
    found = await store.read_category(LIFECYCLE_STREAM, 0, 10_000)
    return [(e.type, e.data) for e in found if e.data.get(key) == value]


async def versions(store: Store, stream: str) -> list[int]:
    return [e.version for e in await store.read_stream(stream)]


async def test_soft_delete_hides_a_stream_everywhere_and_restore_brings_it_back(any_store: Store) -> None:
    cat = category()
    gone, kept = f"{cat}-1", f"{cat}-2"
    await any_store.append(gone, events(3))
    await any_store.append(kept, events(1))
    who = Actor(via="http", role="admin", token_fingerprint=token_fingerprint("secret"))

    state = await any_store.delete_stream(gone, actor=who)
    assert (state.deleted, state.deleted_version, state.version) == (True, 3, 3)
    assert state.deleted_at is not None
    assert await any_store.read_stream(gone) == []
    assert await any_store.read_stream(gone, direction="backward") == []
    assert await any_store.stream_version(gone) == 3  # appends keep counting
    assert {e.stream for e in await any_store.read_category(cat, 0, 100)} == {kept}
    assert gone not in {e.stream for e in await any_store.read_all(0, 10_000)}

    again = await any_store.delete_stream(gone)
    assert again.deleted and again.deleted_at == state.deleted_at

    restored = await any_store.restore_stream(gone, actor=who)
    assert (restored.deleted, restored.deleted_version) == (False, None)
    assert await versions(any_store, gone) == [1, 2, 3]
    assert [e.stream for e in await any_store.read_category(cat, 0, 100)] == [gone] * 3 + [kept]

    records = await audit_for(any_store, gone)
    assert [(r["action"], r["outcome"]) for r in records] == [
        ("stream.delete", "ok"),
        ("stream.delete", "unchanged"),
        ("stream.restore", "ok"),
    ]
    assert records[0]["actor"] == {
        "via": "http",
        "role": "admin",
        "token_fingerprint": token_fingerprint("secret"),
    }
    assert records[1]["actor"]["via"] == "python"
    assert "secret" not in orjson.dumps(records).decode()
    assert [t for t, _ in await lifecycle_for(any_store, "stream", gone)] == [
        "StreamDeleted",
        "StreamRestored",
    ]


async def test_an_append_to_a_deleted_stream_brings_it_back_with_the_new_events_only(
    any_store: Store,
) -> None:
    stream = f"{category()}-1"
    await any_store.append(stream, events(2))
    await any_store.delete_stream(stream)
    with pytest.raises(WrongExpectedVersion) as conflict:  # what a repository that read nothing expects
        await any_store.append(stream, events(1), 0)
    assert conflict.value.actual == 2
    result = await any_store.append(stream, events(1), 2)  # expected versions still count hidden events
    assert result.last_version == 3
    assert await versions(any_store, stream) == [3]
    state = await any_store.stream_lifecycle(stream)
    assert (state.deleted, state.deleted_version, state.first_visible_version) == (False, 2, 3)
    await any_store.restore_stream(stream)
    assert await versions(any_store, stream) == [1, 2, 3]


async def test_truncate_hides_versions_below_and_can_be_undone(any_store: Store) -> None:
    stream = f"{category()}-1"
    await any_store.append(stream, events(5))

    state = await any_store.truncate_stream(stream, 4)
    assert (state.truncate_before, state.first_visible_version) == (4, 4)
    assert await versions(any_store, stream) == [4, 5]
    assert [e.version for e in await any_store.read_stream(stream, direction="backward")] == [5, 4]
    assert [e.version for e in await any_store.read_category(stream.split("-")[0], 0, 100)] == [4, 5]

    assert (await any_store.truncate_stream(stream, 6)).first_visible_version == 6  # everything
    assert await versions(any_store, stream) == []
    assert not (await any_store.stream_lifecycle(stream)).deleted  # empty, but not deleted
    await any_store.truncate_stream(stream, 6)
    await any_store.truncate_stream(stream, 1)
    assert await versions(any_store, stream) == [1, 2, 3, 4, 5]

    for bad in (0, -1, 7, True, "3"):
        with pytest.raises(ValidationError) as info:
            await any_store.truncate_stream(stream, bad)  # type: ignore[arg-type]
        assert info.value.field == "before"
    with pytest.raises(StreamNotFound):
        await any_store.truncate_stream(f"{stream}-none", 1)
    with pytest.raises(StreamNotFound):
        await any_store.delete_stream(f"{stream}-none")

    outcomes = [(r["type"], r["outcome"]) for r in await audit_for(any_store, stream)]
    assert outcomes[:4] == [("AdminActionPerformed", o) for o in ("ok", "ok", "unchanged", "ok")]
    assert outcomes[4:] == [("AdminActionFailed", "validation-error")] * 5
    failed, _ = await audit_for(any_store, f"{stream}-none")
    assert failed["parameters"] == {"before": 1} and failed["outcome"] == "stream-not-found"
    assert "has no events" in failed["detail"]
    truncations = [d["before"] for _, d in await lifecycle_for(any_store, "stream", stream)]
    assert truncations == [4, 6, 1]


async def test_ilji_streams_cannot_be_written_or_hidden_from_outside(any_store: Store) -> None:
    stream = f"{category()}-1"
    await any_store.append(stream, events(1))
    await any_store.delete_stream(stream)
    with pytest.raises(ValidationError, match="reserved"):
        await any_store.append(AUDIT_STREAM, events(1))
    for call in (
        any_store.delete_stream(AUDIT_STREAM),
        any_store.truncate_stream(LIFECYCLE_STREAM, 1),
        any_store.set_retention("$audit", max_count=1),
    ):
        with pytest.raises(ValidationError, match="reserved"):
            await call
    # Ilji's streams stay out of the global log, and are read by stream or category.
    assert not any(e.stream.startswith("$") for e in await any_store.read_all(0, 10_000))
    assert await any_store.read_category("$audit", 0, 10_000)
    assert await any_store.read_stream(AUDIT_STREAM)


async def test_retention_keeps_the_newest_events_of_each_stream(any_store: Store) -> None:
    cat = category()
    await any_store.append(f"{cat}-a", events(5))
    await any_store.append(f"{cat}-b", events(2))
    rule = await any_store.set_retention(cat, max_count=3)
    assert rule.as_json() == {"category": cat, "max_age_seconds": None, "max_count": 3}
    assert await any_store.retention(cat) == rule
    assert await versions(any_store, f"{cat}-a") == [3, 4, 5]
    assert await versions(any_store, f"{cat}-b") == [1, 2]
    assert len(await any_store.read_category(cat, 0, 100)) == 5
    await any_store.append(f"{cat}-b", events(2))  # the window moves with each append
    assert await versions(any_store, f"{cat}-b") == [2, 3, 4]
    await any_store.clear_retention(cat)
    assert await any_store.retention(cat) is None
    assert await versions(any_store, f"{cat}-a") == [1, 2, 3, 4, 5]
    await any_store.clear_retention(cat)
    outcomes = [(r["action"], r["outcome"]) for r in await audit_for(any_store, cat)]
    assert outcomes == [("retention.set", "ok"), ("retention.clear", "ok"), ("retention.clear", "unchanged")]
    assert [t for t, _ in await lifecycle_for(any_store, "category", cat)] == [
        "CategoryRetentionSet",
        "CategoryRetentionCleared",
    ]


@pytest.mark.parametrize(
    ("max_age", "max_count", "field"),
    [
        (None, None, "retention"),
        (0, None, "max_age_seconds"),
        (-5, None, "max_age_seconds"),
        (10**12, None, "max_age_seconds"),
        (True, None, "max_age_seconds"),
        (None, 0, "max_count"),
        (None, 2**53, "max_count"),
        (None, 1.5, "max_count"),
    ],
)
async def test_bad_retention_is_refused_and_nothing_is_stored(
    any_store: Store, max_age: Any, max_count: Any, field: str
) -> None:
    cat = category()
    with pytest.raises(ValidationError) as info:
        await any_store.set_retention(cat, max_age_seconds=max_age, max_count=max_count)
    assert info.value.field == field
    assert await any_store.retention(cat) is None
    with pytest.raises(ValidationError):
        await any_store.set_retention("has-dash", max_count=1)


async def test_retention_by_age_in_the_memory_twin() -> None:
    clock = Clock()
    store = MemoryEventStore(clock=clock)
    cat = category()
    await store.append(f"{cat}-1", events(2))
    clock.now += timedelta(hours=2)
    await store.append(f"{cat}-1", events(1))
    await store.set_retention(cat, max_age_seconds=3600)
    assert await versions(store, f"{cat}-1") == [3]


# -- PostgreSQL only ------------------------------------------------------------------------


async def test_retention_by_age_and_the_rows_stay_stored(store: PostgresEventStore) -> None:
    cat = category()
    stream = f"{cat}-1"
    async with store.database.connection() as conn:
        # An event recorded two hours ago (the append statement always stamps "now").
        await conn.execute(
            "INSERT INTO ilji.events (position, id, stream, version, type, data, metadata, recorded_at)"
            " VALUES (pg_current_xact_id()::text::bigint << 12, %s, %s, 1, 'Old', '{}', '{}',"
            " now() - interval '2 hours')",
            (uuid.uuid4(), stream),
        )
    await store.append(stream, events(1))
    await store.set_retention(cat, max_age_seconds=3600)
    assert await versions(store, stream) == [2]
    await store.set_retention(cat, max_age_seconds=3 * 3600, max_count=5)
    assert await versions(store, stream) == [1, 2]
    await store.delete_stream(stream)
    async with store.database.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM ilji.events WHERE stream = %s", (stream,))
        assert await cur.fetchone() == (2,)  # hidden, never removed


async def test_a_change_and_its_records_commit_in_one_transaction(store: PostgresEventStore) -> None:
    stream = f"{category()}-1"
    await store.append(stream, events(1))
    await store.delete_stream(stream)
    [change] = [
        e for e in await store.read_category("$lifecycle", 0, 10_000) if e.data.get("stream") == stream
    ]
    [record] = [e for e in await store.read_stream(AUDIT_STREAM, limit=10_000) if e.data["target"] == stream]
    assert change.position >> 12 == record.position >> 12  # the same transaction id


async def test_reads_without_rules_never_look_a_rule_up(pg_server: EmbeddedPostgres) -> None:
    url = new_database(pg_server)  # a database where no test made a rule
    async with await PostgresEventStore.open(url) as store:
        await store.append(f"{category()}-1", events(20))
        async with store.database.connection() as conn:
            cur = await conn.execute(
                b"EXPLAIN (ANALYZE, FORMAT JSON) " + sql.load("read_all"),
                {"after": 0, "limit": 10, "types": None},
            )
            [(plan,)] = await cur.fetchall()
    scan = next(p for p in plan[0]["Plan"]["Plans"] if p["Parent Relationship"] == "Outer")
    assert scan["Node Type"] == "Index Scan" and scan["Actual Rows"] == 10
    per_event = [p for p in scan.get("Plans", []) if p["Parent Relationship"] == "SubPlan"]
    assert len(per_event) == 2
    assert all(p["Actual Loops"] == 0 for p in per_event)


async def _slow_writer(url: str, streams: list[str], appends: int, rng: random.Random) -> None:
    """Append in explicit transactions held open 0-15 ms, so commits come out of order."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for _ in range(appends):
            n = rng.randint(1, 3)
            with contextlib.suppress(psycopg.errors.UniqueViolation):  # lost a race for a version
                await _append_held(conn, rng.choice(streams), n, rng)


async def _append_held(conn: psycopg.AsyncConnection[Any], stream: str, n: int, rng: random.Random) -> None:
    async with conn.transaction():
        await conn.execute(
            APPEND_MANY,
            {
                "stream": stream,
                "expected": -1,
                "ids": [uuid.uuid4() for _ in range(n)],
                "types": ["Tick"] * n,
                "data": ["{}"] * n,
                "metadata": ["{}"] * n,
            },
        )
        await asyncio.sleep(rng.random() * 0.015)


async def test_a_follower_never_misses_a_visible_event_while_streams_are_hidden(database_url: str) -> None:
    """Deletions and truncations during out-of-order commits: the hidden set only grows, so
    every event visible at the end was visible all along, and the follower must have it."""
    rng = random.Random()
    cat = category()
    streams = [f"{cat}-{i}" for i in range(6)]
    async with await PostgresEventStore.open(database_url, max_size=6, poll_interval=0.05) as store:
        seen: list[int] = []

        async def follower() -> None:
            async def page(cursor: int) -> list:  # type: ignore[type-arg]
                return await store.read_category(cat, cursor, 5)

            listener = Listener(store.conninfo)
            try:
                async for event in follow_pages(page, 0, 5, listener, poll_interval=0.05):
                    seen.append(event.position)
            finally:
                await listener.close()

        async def hider() -> int:
            changes = 0
            for _ in range(30):
                stream = rng.choice(streams)
                state = await store.stream_lifecycle(stream)
                if state.version:
                    if rng.random() < 0.3:
                        await store.delete_stream(stream)
                    else:
                        low = max(state.truncate_before, 1)
                        await store.truncate_stream(stream, rng.randint(low, state.version + 1))
                    changes += 1
                await asyncio.sleep(rng.random() * 0.01)
            return changes

        task = asyncio.create_task(follower())
        writers = [_slow_writer(database_url, streams, 20, random.Random(rng.random())) for _ in range(3)]
        *_, changes = await asyncio.gather(*writers, hider())
        for stream in streams:  # brings deleted streams back: something is visible at the end
            await store.append(stream, events(1))
        final: list[int] = []
        cursor = 0
        while page := await store.read_category(cat, cursor, 1000):
            final.extend(e.position for e in page)
            cursor = page[-1].position
        for _ in range(100):
            if set(final) <= set(seen):
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert changes > 0 and final, "the run hid nothing or left nothing visible"
    assert seen == sorted(set(seen)), "the follower went back or saw an event twice"
    missed = sorted(set(final) - set(seen))
    assert not missed, f"the follower missed {len(missed)} of {len(final)} visible events"


async def test_admin_actions_and_hidden_events_are_no_backlog_for_a_projection(
    store: PostgresEventStore,
) -> None:
    """A projection of the whole log never reads $audit or hidden events: they are no lag."""
    from ilji.projections import Projection, admin
    from ilji.projections import sql as projection_sql
    from ilji.projections.worker import register

    class Everything(Projection):
        name = f"everything_{uuid.uuid4().hex[:8]}"

    await register(store, Everything())
    stream = f"{category()}-1"
    await store.append(stream, events(2))
    async with store.database.connection() as conn:
        params = {"name": Everything.name, "version": 1, "partitions": 1, "code_version": 1}
        await conn.execute(projection_sql.load("declare_version"), params)
        await conn.execute(projection_sql.load("ensure_partitions"), params)
        # As if the projection had read everything so far.
        await conn.execute(
            "UPDATE ilji.projection_checkpoints SET position = (SELECT max(position) FROM ilji.events)"
            " WHERE projection = %s",
            (Everything.name,),
        )
    await admin.pause(store, Everything.name)  # audited: an event in $audit
    await store.append(stream, events(1))
    await store.delete_stream(stream)  # hides the new event, and is audited too
    (status,) = await admin.status(store, Everything.name)
    assert (status.events_behind, status.lag_seconds) == (0, 0.0)
    await store.append(f"{category()}-2", events(1))
    (status,) = await admin.status(store, Everything.name)
    assert status.events_behind == 1
    assert [r["action"] for r in await audit_for(store, Everything.name)] == ["projection.pause"]


@pytest.mark.parametrize("code_point_order", [True, False])
async def test_the_stream_listing_leaves_deleted_streams_out(
    store: PostgresEventStore, code_point_order: bool
) -> None:
    from ilji.store.catalog import Catalog

    cat = category()
    for name in ("a", "b", "c"):
        await store.append(f"{cat}-{name}", events(2))
    await store.delete_stream(f"{cat}-b")
    await store.truncate_stream(f"{cat}-c", 2)
    catalog = Catalog(store.database)

    async def listed() -> list[tuple[str, int]]:
        page = await catalog.list_streams(prefix=cat, limit=2, code_point_order=code_point_order)
        return [(s.stream, s.version) for s in page.streams]

    assert await listed() == [(f"{cat}-a", 2), (f"{cat}-c", 2)]
    await store.restore_stream(f"{cat}-b")
    assert await listed() == [(f"{cat}-a", 2), (f"{cat}-b", 2)]


async def test_repositories_read_through_the_rules(store: PostgresEventStore) -> None:
    """Snapshots are used only while they were folded from what is visible now; a command does
    not revive a deleted aggregate."""
    from dataclasses import dataclass

    from ilji.app import (
        AggregateType,
        DataclassStateCodec,
        Decider,
        EventRegistry,
        Repository,
        SnapshotPolicy,
    )
    from ilji.store.snapshots import PostgresSnapshotStore

    registry = EventRegistry()

    @registry.register
    @dataclass(frozen=True)
    class Counted:
        n: int

    @dataclass(frozen=True)
    class Count:
        n: int

    @dataclass(frozen=True)
    class Total:
        sum: int = 0

    def decide(command: Count, state: Total) -> list[Counted]:
        return [Counted(command.n)]

    def evolve(state: Total, event: Counted) -> Total:
        return Total(state.sum + event.n)

    kind = AggregateType(
        category(),
        Decider(decide, evolve, Total),
        registry,
        SnapshotPolicy(every=10, codec=DataclassStateCodec(Total, schema_version=1)),
    )
    repo = Repository(store, kind, snapshots=PostgresSnapshotStore(store.database), max_retries=1)
    for _ in range(12):
        await repo.handle("a", Count(1))
    stream = repo.stream("a")

    await store.truncate_stream(stream, 5)  # below the snapshot at 10, which folded 1..4 too
    loaded = await repo.load("a")
    assert (loaded.state, loaded.version, loaded.snapshot_version) == (Total(8), 12, 0)
    await store.truncate_stream(stream, 1)  # all shown again: the snapshot applies again
    loaded = await repo.load("a")
    assert (loaded.state, loaded.version, loaded.snapshot_version) == (Total(12), 12, 10)
    await store.truncate_stream(stream, 11)  # hides the snapshot's event: fold what is visible
    loaded = await repo.load("a")
    assert (loaded.state, loaded.version, loaded.snapshot_version) == (Total(2), 12, 0)

    await store.delete_stream(stream)
    assert (await repo.load("a")).version == 0
    with pytest.raises(WrongExpectedVersion):
        await repo.handle("a", Count(1))
    assert await store.stream_version(stream) == 12


async def _rows(store: PostgresEventStore, stream: str) -> list[int]:
    async with store.database.connection() as conn:
        cur = await conn.execute(
            "SELECT version FROM ilji.events WHERE stream = %s ORDER BY version", (stream,)
        )
        return [v for (v,) in await cur.fetchall()]


async def _delete_row(conn: psycopg.AsyncConnection[Any], setting: str, stream: str, version: int) -> None:
    async with conn.transaction():
        await conn.execute("SELECT set_config('ilji.scavenge', %s, true)", (setting,))
        await conn.execute("DELETE FROM ilji.events WHERE stream = %s AND version = %s", (stream, version))


async def test_scavenge_removes_hidden_rows_only_and_keeps_each_streams_newest(
    pg_server: EmbeddedPostgres,
) -> None:
    url = new_database(pg_server)  # a scavenge sweeps the whole database
    cat = category()
    gone, cut, kept = f"{cat}-gone", f"{cat}-cut", f"{cat}-kept"
    async with await PostgresEventStore.open(url) as store:
        await store.append(gone, events(3))
        await store.append(cut, events(4))
        await store.append(kept, events(2))
        await store.delete_stream(gone)
        await store.truncate_stream(cut, 3)
        visible = [(e.stream, e.version) for e in await store.read_category(cat, 0, 100)]

        # The guard: without the scavenge setting nothing goes; with it, no visible row and
        # no stream's newest row does.
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for setting, stream, version in [("off", gone, 1), ("on", kept, 1), ("on", gone, 3)]:
                with pytest.raises(psycopg.Error) as refused:
                    await _delete_row(conn, setting, stream, version)
                assert refused.value.sqlstate == "IJ001"

        assert [await store.scavenge_batch(3) for _ in range(3)] == [3, 1, 0]
        assert await _rows(store, gone) == [3]  # the newest row stays: versions never come back
        assert await _rows(store, cut) == [3, 4]
        assert await _rows(store, kept) == [1, 2]
        assert [(e.stream, e.version) for e in await store.read_category(cat, 0, 100)] == visible

        await store.restore_stream(gone)
        assert await versions(store, gone) == [3]  # what is left
        assert (await store.append(gone, events(1))).last_version == 4
        records = [e.data for e in await store.read_stream(AUDIT_STREAM, limit=100)]
        assert [(r["action"], r["outcome"]) for r in records if r["target"] == "ilji.events"] == [
            ("streams.scavenge", "ok"),
            ("streams.scavenge", "ok"),
            ("streams.scavenge", "unchanged"),
        ]
        removed = [
            e.data for e in await store.read_category(LIFECYCLE_STREAM, 0, 100) if e.type == "EventsScavenged"
        ]
        assert removed == [{"events": 3, "streams": {gone: 2, cut: 1}}, {"events": 1, "streams": {cut: 1}}]
        with pytest.raises(ValidationError):
            await store.scavenge_batch(0)
