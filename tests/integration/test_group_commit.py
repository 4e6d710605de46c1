"""Group commit: concurrent appends share transactions, and each caller keeps its own contract.

Groups are observed through positions: an event's position is its transaction id shifted left
by 12 bits plus its index, so `position >> 12` tells which appends shared a transaction. A group
forms one event-loop turn after the first append of it arrives, so appends started together by
`asyncio.gather` go as one group, whatever the machine's speed, when one group may be in flight
at a time (`max_in_flight = 1`, set by the `grouped` fixture; the default shares a big queue out
among several groups).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import psycopg
import pytest

from ilji import (
    ANY,
    NO_STREAM,
    AppendResult,
    DuplicateEventId,
    NewEvent,
    PostgresEventStore,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.domain.events import POSITION_SHIFT


@pytest.fixture
async def grouped(database_url: str) -> AsyncIterator[PostgresEventStore]:
    s = await PostgresEventStore.open(database_url, max_size=6)
    assert s.group_commit is not None
    s.group_commit.max_in_flight = 1
    try:
        yield s
    finally:
        await s.close()


def xid(position: int) -> int:
    return position >> POSITION_SHIFT


def name(prefix: str = "gc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def outcomes(*calls: Awaitable[AppendResult]) -> list[AppendResult | BaseException]:
    return list(await asyncio.gather(*calls, return_exceptions=True))


async def test_concurrent_appends_share_transactions(grouped: PostgresEventStore) -> None:
    streams = [name() for _ in range(40)]
    results = await asyncio.gather(*(grouped.append(s, [NewEvent("Tick", {"s": s})]) for s in streams))
    transactions = {xid(r.first_position) for r in results}
    assert len(transactions) < len(streams) / 4, transactions
    for s, r in zip(streams, results, strict=True):
        assert r.first_version == 1
        [event] = await grouped.read_stream(s)
        assert (event.position, event.data) == (r.first_position, {"s": s})
    # ...and reach the global log in position order, each exactly once.
    read = await grouped.read_category("gc", 0, 1000)
    mine = [e.position for e in read if e.stream in set(streams)]
    assert sorted(mine) == mine == sorted(r.first_position for r in results)
    assert grouped.group_commit is not None and grouped.group_commit.sizes.count >= 1


async def test_by_default_a_long_queue_is_shared_out_among_several_groups(database_url: str) -> None:
    async with await PostgresEventStore.open(database_url, max_size=8) as store:
        assert store.group_commit is not None and store.group_commit.max_in_flight > 1
        streams = [name() for _ in range(64)]
        results = await asyncio.gather(*(store.append(s, [NewEvent("Tick")]) for s in streams))
        transactions = {xid(r.first_position) for r in results}
        assert 1 < len(transactions) <= 16, transactions
        assert [await store.stream_version(s) for s in streams] == [1] * len(streams)


async def test_without_group_commit_each_append_is_its_own_transaction(database_url: str) -> None:
    async with await PostgresEventStore.open(database_url, max_size=6, group_commit=False) as store:
        assert store.group_commit is None
        streams = [name() for _ in range(12)]
        results = await asyncio.gather(*(store.append(s, [NewEvent("Tick")]) for s in streams))
        assert len({xid(r.first_position) for r in results}) == len(streams)


async def test_a_conflict_and_bad_input_leave_the_others_in_the_group_intact(
    grouped: PostgresEventStore,
) -> None:
    taken = name()
    await grouped.append(taken, [NewEvent("First"), NewEvent("Second")])
    stored = NewEvent("Stored", {"n": 1})
    resent_stream = name()
    original = await grouped.append(resent_stream, [stored])
    good = [name() for _ in range(10)]

    calls: list[Awaitable[AppendResult]] = [
        grouped.append(name(), [NewEvent("Opener")]),
        *(grouped.append(s, [NewEvent("Good", {"s": s})]) for s in good[:5]),
        grouped.append(taken, [NewEvent("Late")], 1),  # the stream is at version 2
        grouped.append(name(), [NewEvent("Bad", {"x": math.nan})]),  # refused before grouping
        grouped.append(name(), [NewEvent("Dup"), NewEvent("Reused", id=stored.id)]),  # id of another stream
        grouped.append(resent_stream, [stored]),  # an exact resend
        grouped.append(name(), [NewEvent("Exists")], NO_STREAM),
        *(grouped.append(s, [NewEvent("Good", {"s": s}), NewEvent("More")]) for s in good[5:]),
    ]
    got = await outcomes(*calls)
    opener, fives, late, bad, dup, resend, fresh, rest = got[0], got[1:6], *got[6:11], got[11:]
    assert isinstance(opener, AppendResult)

    assert isinstance(late, WrongExpectedVersion)
    assert (late.stream, late.expected, late.actual) == (taken, 1, 2)
    assert isinstance(bad, ValidationError) and bad.field == "events[0].data"
    assert isinstance(dup, DuplicateEventId) and dup.event_ids == [str(stored.id)]
    assert resend == AppendResult(
        resent_stream,
        original.first_version,
        original.last_version,
        original.first_position,
        original.last_position,
        idempotent=True,
    )
    assert isinstance(fresh, AppendResult) and fresh.first_version == 1

    results = [*fives, *rest]
    assert all(isinstance(r, AppendResult) for r in results), results
    # The good appends shared one transaction with the conflicting ones...
    assert len({xid(r.first_position) for r in results if isinstance(r, AppendResult)}) == 1
    # ...and are all stored, in full, while the refused ones stored nothing.
    for s, r in zip(good, results, strict=True):
        assert isinstance(r, AppendResult)
        events = await grouped.read_stream(s)
        assert [e.version for e in events] == list(range(1, r.last_version + 1))
        assert events[0].data == {"s": s}
    assert await grouped.stream_version(taken) == 2
    assert await grouped.stream_version(resent_stream) == 1


async def test_appends_to_one_stream_keep_call_order(grouped: PostgresEventStore) -> None:
    stream = name()
    first = NewEvent("Opened")
    calls: list[Awaitable[AppendResult]] = [grouped.append(name(), [NewEvent("Opener")])]
    calls.append(grouped.append(stream, [first], NO_STREAM))
    calls.extend(grouped.append(stream, [NewEvent("Step", {"i": i})], ANY) for i in range(1, 20))
    calls.append(grouped.append(stream, [NewEvent("Pair", {"i": 20}), NewEvent("Pair", {"i": 21})], 20))
    calls.extend(grouped.append(stream, [NewEvent("Step", {"i": i})]) for i in range(22, 30))
    results = await asyncio.gather(*calls)
    events = await grouped.read_stream(stream, limit=1000)
    assert [e.data.get("i", 0) for e in events] == list(range(30))
    assert [e.version for e in events] == list(range(1, 31))
    positions = [e.position for e in events]
    assert positions == sorted(positions)
    for r in results[1:]:
        assert [e.id for e in events[r.first_version - 1 : r.last_version]] != []
    # ANY appends to one stream went together, with consecutive versions in call order.
    assert len({xid(r.first_position) for r in results[1:]}) < 10
    # A resend of one of them, alone, is recognised as that append (not as part of the others
    # in its transaction), and so is a two-event one.
    middle = events[5]
    again = await grouped.append(stream, [NewEvent(middle.type, middle.data, id=middle.id)])
    assert again.idempotent and (again.first_version, again.first_position) == (6, middle.position)
    pair = events[20:22]
    again = await grouped.append(stream, [NewEvent(e.type, e.data, id=e.id) for e in pair], 20)
    assert again.idempotent and again.first_version == 21
    with pytest.raises(DuplicateEventId):
        await grouped.append(stream, [NewEvent(e.type, e.data, id=e.id) for e in events[5:7]])


async def test_a_group_racing_another_process_on_one_of_its_streams(
    grouped: PostgresEventStore, database_url: str
) -> None:
    contested = name()
    others = [name() for _ in range(6)]
    async with await psycopg.AsyncConnection.connect(database_url) as rival:
        # Another process writes version 1 of the contested stream and keeps it uncommitted:
        # the group's statement computes version 1 as well and waits on the unique index.
        await rival.execute(
            "INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)"
            " VALUES (pg_current_xact_id()::text::bigint << 12, %s, %s, 1, 'Rival', '{}', '{}')",
            (uuid.uuid4(), contested),
        )
        calls: list[Awaitable[Any]] = [
            grouped.append(name(), [NewEvent("Opener")]),
            grouped.append(contested, [NewEvent("Mine")]),
            *(grouped.append(s, [NewEvent("Other")]) for s in others),
        ]
        pending = asyncio.gather(*calls)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watch:
            for _ in range(500):
                cur = await watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
                row = await cur.fetchone()
                if row and row[0]:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the group never waited for the rival transaction")
        await rival.commit()
        results = await pending
    # The group failed on the unique index, ran again and stored everything.
    assert results[1].first_version == 2
    assert [e.type for e in await grouped.read_stream(contested)] == ["Rival", "Mine"]
    for s in others:
        assert await grouped.stream_version(s) == 1


async def test_a_cancelled_caller_that_was_still_queued_stores_nothing(grouped: PostgresEventStore) -> None:
    opener = asyncio.ensure_future(grouped.append(name(), [NewEvent("Opener")]))
    await asyncio.sleep(0)  # the opener's group is in flight now
    queued_stream = name()
    queued = asyncio.ensure_future(grouped.append(queued_stream, [NewEvent("Queued")]))
    kept_stream = name()
    kept = asyncio.ensure_future(grouped.append(kept_stream, [NewEvent("Kept")]))
    await asyncio.sleep(0)
    queued.cancel()
    await opener
    assert (await kept).first_version == 1
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert await grouped.stream_version(queued_stream) == 0


async def test_a_big_batch_skips_the_queue_but_not_call_order(grouped: PostgresEventStore) -> None:
    stream = name()
    calls: list[Awaitable[AppendResult]] = [
        grouped.append(stream, [NewEvent("Big", {"i": i}) for i in range(100)], NO_STREAM),
        *(grouped.append(stream, [NewEvent("Small", {"i": i})]) for i in range(100, 110)),
        grouped.append(stream, [NewEvent("Big", {"i": i}) for i in range(110, 210)], ANY),
        *(grouped.append(stream, [NewEvent("Small", {"i": i})]) for i in range(210, 215)),
    ]
    await asyncio.gather(*calls)
    events = await grouped.read_stream(stream, limit=1000)
    assert [e.data["i"] for e in events] == list(range(215))
