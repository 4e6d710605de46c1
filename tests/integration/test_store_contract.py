"""The event store contract, run against PostgreSQL and the in-memory twin alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from ilji import (
    ANY,
    EXISTS,
    NO_STREAM,
    DuplicateEventId,
    EventStore,
    MemoryEventStore,
    NewEvent,
    PostgresEventStore,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.domain.events import MAX_EVENTS_PER_APPEND, MAX_SAFE_POSITION
from ilji.store.port import STREAM_PAGE, Direction


def events(n: int, prefix: str = "Happened") -> list[NewEvent]:
    return [NewEvent(f"{prefix}{i}", {"i": i}, {"note": f"n{i}"}) for i in range(n)]


async def test_first_event_has_version_one_and_a_stream_version_is_its_event_count(
    any_store: EventStore, stream: str
) -> None:
    first = await any_store.append(stream, events(1))
    assert (first.first_version, first.last_version) == (1, 1)
    second = await any_store.append(stream, events(3))
    assert (second.first_version, second.last_version) == (2, 4)
    assert second.last_position - second.first_position == 2
    assert second.first_position > first.last_position
    assert await any_store.stream_version(stream) == 4
    assert await any_store.stream_version(f"{stream}-none") == 0


async def test_read_back_returns_every_field(any_store: EventStore, stream: str) -> None:
    event = NewEvent("SeatReserved", {"seat": "A1", "n": [1, 2.5, None, True]}, {"correlation_id": "c1"})
    result = await any_store.append(stream, [event])
    [stored] = await any_store.read_stream(stream)
    assert stored.id == event.id
    assert stored.stream == stream
    assert stored.version == 1
    assert stored.position == result.first_position
    assert stored.type == "SeatReserved"
    assert stored.data == {"seat": "A1", "n": [1, 2.5, None, True]}
    assert stored.metadata == {"correlation_id": "c1"}
    assert stored.recorded_at.tzinfo is not None
    assert stored.recorded_at.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - stored.recorded_at).total_seconds()) < 60
    assert 0 < stored.position <= MAX_SAFE_POSITION


@pytest.mark.parametrize(
    ("existing", "expected", "ok"),
    [
        (0, ANY, True),
        (2, ANY, True),
        (0, NO_STREAM, True),
        (2, NO_STREAM, False),
        (0, EXISTS, False),
        (2, EXISTS, True),
        (0, 0, True),
        (2, 2, True),
        (2, 1, False),
        (2, 3, False),
        (0, 1, False),
    ],
)
async def test_expected_version(
    any_store: EventStore, stream: str, existing: int, expected: object, ok: bool
) -> None:
    if existing:
        await any_store.append(stream, events(existing))
    if ok:
        result = await any_store.append(stream, events(1), expected)  # type: ignore[arg-type]
        assert result.last_version == existing + 1
    else:
        with pytest.raises(WrongExpectedVersion) as info:
            await any_store.append(stream, events(1), expected)  # type: ignore[arg-type]
        label = expected if isinstance(expected, int) else expected.value  # type: ignore[attr-defined]
        assert info.value.expected == label
        assert info.value.actual == existing
        assert await any_store.stream_version(stream) == existing


async def test_string_stream_states_are_accepted(any_store: EventStore, stream: str) -> None:
    await any_store.append(stream, events(1), "no_stream")  # type: ignore[arg-type]
    await any_store.append(stream, events(1), "exists")  # type: ignore[arg-type]
    await any_store.append(stream, events(1), "any")  # type: ignore[arg-type]
    assert await any_store.stream_version(stream) == 3


async def test_retrying_the_same_batch_is_idempotent(any_store: EventStore, stream: str) -> None:
    batch = events(3)
    first = await any_store.append(stream, batch, NO_STREAM)
    # Same ids, same stream, same order: with the original expected version, with ANY,
    # and after more events were appended.
    again = await any_store.append(stream, batch, NO_STREAM)
    assert again.idempotent
    assert (again.first_version, again.last_version) == (first.first_version, first.last_version)
    assert (again.first_position, again.last_position) == (first.first_position, first.last_position)
    assert (await any_store.append(stream, batch, ANY)).last_position == first.last_position
    await any_store.append(stream, events(1))
    assert (await any_store.append(stream, batch, 0)).first_version == 1
    assert await any_store.stream_version(stream) == 4


async def test_other_reuse_of_stored_ids_is_a_conflict_and_stores_nothing(
    any_store: EventStore, stream: str
) -> None:
    batch = events(3)
    await any_store.append(stream, batch)
    fresh = NewEvent("Fresh", {})
    cases = {
        "partial overlap": (stream, [batch[2], fresh]),
        "another stream": (f"{stream}x", batch),
        "another order": (stream, [batch[1], batch[0], batch[2]]),
        "a subset": (stream, batch[1:]),
    }
    for name, (target, reused) in cases.items():
        with pytest.raises(DuplicateEventId):
            await any_store.append(target, reused)
        assert await any_store.stream_version(stream) == 3, name
        assert await any_store.stream_version(f"{stream}x") == 0, name
    all_ids = {e.id for e in await any_store.read_all(0, 10_000)}
    assert fresh.id not in all_ids


async def test_an_invalid_event_fails_the_whole_batch(any_store: EventStore, stream: str) -> None:
    batch = [NewEvent("Ok", {}), NewEvent("", {})]
    with pytest.raises(ValidationError) as info:
        await any_store.append(stream, batch)
    assert info.value.field == "events[1].type"
    assert await any_store.stream_version(stream) == 0


async def test_a_batch_is_atomic_when_the_database_refuses_part_of_it(
    any_store: EventStore, stream: str
) -> None:
    stored = NewEvent("Stored", {})
    await any_store.append(f"{stream}-other", [stored])
    with pytest.raises(DuplicateEventId):
        await any_store.append(stream, [NewEvent("New", {}), stored])
    assert await any_store.stream_version(stream) == 0


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("", "stream"),
        ("a" * 201, "stream"),
        ("has space", "stream"),
        ("tab\there", "stream"),
        ("new\nline", "stream"),
        ("nul\x00", "stream"),
        ("$all", "stream"),
    ],
)
async def test_bad_stream_names_are_refused(any_store: EventStore, name: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        await any_store.append(name, events(1))
    assert info.value.field == field


async def test_unusual_but_valid_stream_names_round_trip(any_store: EventStore) -> None:
    suffix = uuid.uuid4().hex[:8]
    for name in [f"주문-{suffix}", f"o'reilly-{suffix}", f"x;DROP_TABLE-{suffix}", f"a{'b' * 190}{suffix}"]:
        await any_store.append(name, events(1))
        [event] = await any_store.read_stream(name)
        assert event.stream == name


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (NewEvent("", {}), "events[0].type"),
        (NewEvent("x" * 201, {}), "events[0].type"),
        (NewEvent("with space", {}), "events[0].type"),
        (NewEvent("T", [1, 2]), "events[0].data"),  # type: ignore[arg-type]
        (NewEvent("T", {}, "meta"), "events[0].metadata"),  # type: ignore[arg-type]
        (NewEvent("T", {"x": float("nan")}), "events[0].data"),
        (NewEvent("T", {"x": "nul\x00byte"}), "events[0].data"),
        (NewEvent("T", {"x": object()}), "events[0].data"),
        (NewEvent("T", {"x": 2**70}), "events[0].data"),
    ],
)
async def test_bad_events_are_refused_naming_the_field(
    any_store: EventStore, stream: str, event: NewEvent, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        await any_store.append(stream, [event])
    assert info.value.field == field
    assert await any_store.stream_version(stream) == 0


async def test_escaped_backslash_u0000_text_is_not_a_nul(any_store: EventStore, stream: str) -> None:
    await any_store.append(stream, [NewEvent("T", {"x": "\\u0000 is text"})])
    [event] = await any_store.read_stream(stream)
    assert event.data == {"x": "\\u0000 is text"}


async def test_event_size_limit(stream: str, database_url: str) -> None:
    for s in [
        MemoryEventStore(max_event_size=1000),
        await PostgresEventStore.open(database_url, max_event_size=1000),
    ]:
        with pytest.raises(ValidationError) as info:
            await s.append(stream, [NewEvent("T", {}), NewEvent("T", {"x": "y" * 1000})])
        assert info.value.field == "events[1]"
        assert "1000" in str(info.value)
        await s.append(stream, [NewEvent("T", {"x": "y" * 900})])
        await s.close()


async def test_batch_size_bounds(any_store: EventStore, stream: str) -> None:
    with pytest.raises(ValidationError):
        await any_store.append(stream, [])
    with pytest.raises(ValidationError):
        await any_store.append(stream, [NewEvent("T", {})] * 2)  # the same id twice
    with pytest.raises(ValidationError):
        await any_store.append(stream, events(MAX_EVENTS_PER_APPEND + 1))
    result = await any_store.append(stream, events(MAX_EVENTS_PER_APPEND))
    assert result.last_version == MAX_EVENTS_PER_APPEND
    assert result.last_position - result.first_position == MAX_EVENTS_PER_APPEND - 1


async def test_read_stream_forward_and_backward(any_store: EventStore, stream: str) -> None:
    await any_store.append(stream, events(10))
    forward = await any_store.read_stream(stream, from_version=3, limit=4)
    assert [e.version for e in forward] == [3, 4, 5, 6]
    assert [e.version for e in await any_store.read_stream(stream, limit=2, direction="backward")] == [10, 9]
    back = await any_store.read_stream(stream, from_version=4, limit=10, direction="backward")
    assert [e.version for e in back] == [4, 3, 2, 1]
    assert await any_store.read_stream(stream, from_version=11) == []
    assert await any_store.read_stream(f"{stream}-missing") == []
    positions = [e.position for e in await any_store.read_stream(stream)]
    assert positions == sorted(positions)


async def test_read_stream_without_a_limit_returns_the_whole_stream(
    any_store: EventStore, stream: str
) -> None:
    # Issue 17: a 150-event stream used to come back as its first 100 events. Two full pages
    # and a partial one cross every page boundary of the reading under the hood.
    total = 2 * STREAM_PAGE + 150
    for start in range(0, total, MAX_EVENTS_PER_APPEND):
        await any_store.append(stream, events(min(MAX_EVENTS_PER_APPEND, total - start)))
    assert [e.version for e in await any_store.read_stream(stream)] == list(range(1, total + 1))
    backward = await any_store.read_stream(stream, direction="backward")
    assert [e.version for e in backward] == list(range(total, 0, -1))
    rest = await any_store.read_stream(stream, from_version=STREAM_PAGE + 7)
    assert [e.version for e in rest] == list(range(STREAM_PAGE + 7, total + 1))
    assert len(await any_store.read_stream(stream, limit=150)) == 150  # paging stays available


async def test_read_limits_are_checked(any_store: EventStore, stream: str) -> None:
    for limit in (0, -1, 10_001):
        with pytest.raises(ValidationError):
            await any_store.read_stream(stream, limit=limit)
        with pytest.raises(ValidationError):
            await any_store.read_all(0, limit)


BAD_NAMES = ["", "a" * 201, "has space", "new\nline", "nul\x00"]


@pytest.mark.parametrize("after", [-1, -2, True, 1.5, "3"])
async def test_bad_positions_are_refused_by_every_read_of_the_log(
    any_store: EventStore, after: object
) -> None:
    # The in-memory store once read `read_all(after=-2)` as "the last two events".
    await any_store.append(f"bad-{uuid.uuid4().hex[:8]}", events(3))
    for read in (
        lambda: any_store.read_all(after, 10),  # type: ignore[arg-type]
        lambda: any_store.read_category("bad", after, 10),  # type: ignore[arg-type]
        lambda: anext(any_store.follow(after)),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValidationError) as info:
            await read()
        assert info.value.field == "after"


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("from_version", [-1, -5, True, "2"])
async def test_bad_from_versions_are_refused(
    any_store: EventStore, stream: str, direction: Direction, from_version: object
) -> None:
    await any_store.append(stream, events(3))
    with pytest.raises(ValidationError) as info:
        await any_store.read_stream(stream, from_version, 10, direction)  # type: ignore[arg-type]
    assert info.value.field == "from_version"


async def test_bad_names_are_refused_by_reads(any_store: EventStore, stream: str) -> None:
    for name in BAD_NAMES:
        with pytest.raises(ValidationError) as info:
            await any_store.read_stream(name)
        assert info.value.field == "stream", name
        with pytest.raises(ValidationError) as info:
            await any_store.stream_version(name)
        assert info.value.field == "stream", name
        with pytest.raises(ValidationError):
            await any_store.read_category(name, 0, 10)
    for category in ("has-dash", 42):
        with pytest.raises(ValidationError):
            await any_store.read_category(category, 0, 10)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await anext(any_store.follow(0, category=category))  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as info:
        await any_store.read_stream(stream, direction="sideways")  # type: ignore[arg-type]
    assert info.value.field == "direction"


async def test_one_type_may_be_given_as_a_string(any_store: EventStore) -> None:
    tag = uuid.uuid4().hex[:8]
    start = await any_store.read_all(0, 10_000)
    after = start[-1].position if start else 0
    await any_store.append(f"typed{tag}-1", [NewEvent(f"Only{tag}", {}), NewEvent(f"O{tag}", {})])
    found = await any_store.read_all(after, 10, f"Only{tag}")  # type: ignore[arg-type]
    assert [e.type for e in found] == [f"Only{tag}"]


async def test_global_log_and_categories(any_store: EventStore) -> None:
    tag = uuid.uuid4().hex[:8]
    start = await any_store.read_all(0, 10_000)
    after = start[-1].position if start else 0
    await any_store.append(f"order{tag}-1", [NewEvent("OrderPlaced", {"n": 1})])
    await any_store.append(f"credit{tag}-1", [NewEvent("CreditReserved", {"n": 2})])
    await any_store.append(
        f"order{tag}-2-a", [NewEvent("OrderPlaced", {"n": 3}), NewEvent("OrderApproved", {"n": 4})]
    )
    log = await any_store.read_all(after, 100)
    assert [e.data["n"] for e in log] == [1, 2, 3, 4]
    assert [e.position for e in log] == sorted(e.position for e in log)
    assert len({e.position for e in log}) == 4
    # paging with the last position sees each event exactly once
    paged, cursor = [], after
    while page := await any_store.read_all(cursor, 1):
        paged.extend(page)
        cursor = page[-1].position
    assert [e.id for e in paged] == [e.id for e in log]
    orders = await any_store.read_category(f"order{tag}", 0, 100)
    assert [e.data["n"] for e in orders] == [1, 3, 4]
    assert {e.category for e in orders} == {f"order{tag}"}
    placed = await any_store.read_category(f"order{tag}", 0, 100, types=["OrderPlaced"])
    assert [e.data["n"] for e in placed] == [1, 3]
    typed = await any_store.read_all(after, 100, types=["CreditReserved", "OrderApproved"])
    assert [e.data["n"] for e in typed] == [2, 4]
    assert await any_store.read_category(f"order{tag}", orders[-1].position, 100) == []
    with pytest.raises(ValidationError):
        await any_store.read_category("has-dash", 0, 10)


async def test_follow_catches_up_then_sees_new_events(any_store: EventStore) -> None:
    import asyncio

    tag = uuid.uuid4().hex[:8]
    category = f"live{tag}"
    await any_store.append(f"{category}-1", events(3))
    seen: list[str] = []

    async def consume() -> None:
        async for event in any_store.follow(0, category=category, batch_size=2):
            seen.append(event.type)
            if len(seen) == 5:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    await any_store.append(f"{category}-2", events(2, "Later"))
    await asyncio.wait_for(task, 10)
    assert seen == ["Happened0", "Happened1", "Happened2", "Later0", "Later1"]


async def test_global_and_category_reads_use_an_ordered_index_scan(database_url: str) -> None:
    """A page must cost `limit` rows, not everything after the cursor (see PostgresEventStore.open)."""
    from ilji.store import sql

    async with await PostgresEventStore.open(database_url) as store:
        for _ in range(5):
            await store.append(f"plan-{uuid.uuid4().hex[:8]}", events(50))
        async with store.database.connection() as conn:
            for name, params in [
                ("read_all", {"after": 0, "limit": 10, "types": None}),
                ("read_category", {"category": "plan", "after": 0, "limit": 10, "types": None}),
            ]:
                cur = await conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + sql.load(name), params)
                [(plan,)] = await cur.fetchall()
                # The Limit's outer child; the others are the lifecycle filter's InitPlans.
                [scan] = [p for p in plan[0]["Plan"]["Plans"] if p["Parent Relationship"] == "Outer"]
                assert scan["Node Type"] == "Index Scan", (name, scan["Node Type"])
                assert scan["Actual Rows"] == 10


async def test_every_read_gives_the_stored_id_and_time_exactly(database_url: str) -> None:
    """The reads fetch the id and the time in binary and decode them on first access
    (RecordedEvent): the values must be the ones PostgreSQL holds, to the microsecond."""
    category = f"exact{uuid.uuid4().hex[:8]}"
    stream = f"{category}-1"
    async with await PostgresEventStore.open(database_url) as store:
        result = await store.append(stream, events(3))
        async with store.database.connection() as conn:
            cur = await conn.execute(
                "SELECT id, recorded_at FROM ilji.events WHERE stream = %s ORDER BY version", [stream]
            )
            held = await cur.fetchall()
        reads = {
            "forward": await store.read_stream(stream),
            "backward": list(reversed(await store.read_stream(stream, direction="backward"))),
            "all": await store.read_all(result.first_position - 1, 3),
            "category": await store.read_category(category),
        }
    for name, read in reads.items():
        assert [(e.id, e.recorded_at) for e in read] == held, name
        assert all(type(e.id) is uuid.UUID and e.recorded_at.tzinfo is not None for e in read), name
