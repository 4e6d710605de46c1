"""Multi-stream appends (`append_streams`): one transaction, all or nothing, on both stores."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ilji import (
    ANY,
    NO_STREAM,
    AppendPart,
    DuplicateEventId,
    MemoryEventStore,
    NewEvent,
    PostgresEventStore,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.domain.events import MAX_EVENTS_PER_APPEND

Store = PostgresEventStore | MemoryEventStore


def events(n: int, prefix: str = "Happened") -> list[NewEvent]:
    return [NewEvent(f"{prefix}{i}", {"i": i}) for i in range(n)]


def streams(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:12]
    return [f"acct{k}-{tag}" for k in range(n)]


async def test_parts_are_stored_together_in_part_order(any_store: Store) -> None:
    a, b, c = streams(3)
    await any_store.append(b, events(2))
    results = await any_store.append_streams(
        [AppendPart(a, events(2), NO_STREAM), (b, events(1), 2), (c, events(3))]
    )
    assert [r.stream for r in results] == [a, b, c]
    assert [(r.first_version, r.last_version) for r in results] == [(1, 2), (3, 3), (1, 3)]
    assert not any(r.idempotent for r in results)
    # Consecutive in the global log, in part order: nothing else between the first and the last.
    between = await any_store.read_all(after=results[0].first_position - 1, limit=100)
    between = [e for e in between if e.position <= results[-1].last_position]
    assert [e.stream for e in between] == [a, a, b, c, c, c]
    assert [e.version for e in between] == [1, 2, 3, 1, 2, 3]
    for result in results:
        assert result.last_position - result.first_position == result.last_version - result.first_version


async def test_a_wrong_expected_version_names_its_part_and_nothing_is_stored(any_store: Store) -> None:
    a, b = streams(2)
    await any_store.append(b, events(1))
    with pytest.raises(WrongExpectedVersion) as caught:
        await any_store.append_streams([(a, events(1), NO_STREAM), (b, events(1), 5)])
    assert (caught.value.stream, caught.value.expected, caught.value.actual) == (b, 5, 1)
    assert caught.value.part == 1
    assert caught.value.details["part"] == 1
    assert "parts[1]" in str(caught.value)
    assert await any_store.stream_version(a) == 0
    assert await any_store.stream_version(b) == 1


async def test_bad_input_names_the_part_and_the_event(any_store: Store) -> None:
    a, b = streams(2)
    bad = [NewEvent("Fine", {}), NewEvent("", {})]
    with pytest.raises(ValidationError) as caught:
        await any_store.append_streams([(a, events(1)), (b, bad)])
    assert caught.value.field == "parts[1].events[1].type"
    with pytest.raises(ValidationError) as caught:
        await any_store.append_streams([(a, events(1)), (b, [NewEvent("T", {"x": float("nan")})])])
    assert caught.value.field.startswith("parts[1].events[0].data")
    with pytest.raises(ValidationError) as caught:
        await any_store.append_streams([(a, events(1)), (a, events(1))])
    assert caught.value.field == "parts[1].stream"
    shared = NewEvent("Shared", {})
    with pytest.raises(ValidationError) as caught:
        await any_store.append_streams([(a, [shared]), (b, [shared])])
    assert caught.value.field == "parts[1].events[0].id"
    with pytest.raises(ValidationError) as caught:
        await any_store.append_streams([])
    assert caught.value.field == "parts"
    with pytest.raises(ValidationError) as caught:
        await any_store.append_streams([(a, events(1), "sometimes")])
    assert caught.value.field == "parts[0].expected_version"
    assert await any_store.stream_version(a) == 0
    assert await any_store.stream_version(b) == 0


async def test_the_position_budget_covers_the_whole_call(any_store: Store) -> None:
    a, b = streams(2)
    half = MAX_EVENTS_PER_APPEND // 2
    # Events plus one unused position between the two parts: 2048 + 1 + 2048 is one too many.
    with pytest.raises(ValidationError) as caught:
        await any_store.append_streams([(a, events(half)), (b, events(half))])
    assert caught.value.field == "parts"
    assert await any_store.stream_version(a) == 0
    results = await any_store.append_streams([(a, events(half - 1)), (b, events(half))])
    assert results[1].last_version == half


async def test_an_exact_resend_answers_with_the_original_results(any_store: Store) -> None:
    a, b = streams(2)
    parts = [(a, events(2), NO_STREAM), (b, events(1), NO_STREAM)]
    first = await any_store.append_streams(parts)
    again = await any_store.append_streams(parts)
    assert all(r.idempotent for r in again)
    assert [(r.first_position, r.last_position, r.last_version) for r in again] == [
        (r.first_position, r.last_position, r.last_version) for r in first
    ]
    assert await any_store.stream_version(a) == 2


async def test_a_partial_or_different_reuse_is_refused(any_store: Store) -> None:
    a, b, c = streams(3)
    ea, eb = events(2), events(1)
    await any_store.append_streams([(a, ea), (b, eb)])
    # Only one of the two parts, plus a new one: refused, the new part is not stored.
    with pytest.raises(DuplicateEventId) as caught:
        await any_store.append_streams([(c, events(1)), (a, ea)])
    assert caught.value.part == 1
    assert await any_store.stream_version(c) == 0
    # The same parts in another order are another call.
    with pytest.raises(DuplicateEventId) as caught:
        await any_store.append_streams([(b, eb), (a, ea)])
    assert caught.value.part == 0
    # A part whose events went to another stream.
    with pytest.raises(DuplicateEventId) as caught:
        await any_store.append_streams([(a, ea), (c, eb)])
    assert caught.value.part == 1
    # Ids stored by two single appends are not an earlier multi-stream call.
    x, y = streams(2)
    ex, ey = events(1), events(1)
    await any_store.append(x, ex)
    await any_store.append(y, ey)
    with pytest.raises(DuplicateEventId):
        await any_store.append_streams([(x, ex), (y, ey)])
    assert await any_store.stream_version(c) == 0


async def test_a_follower_paging_one_event_at_a_time_sees_every_call_whole(any_store: Store) -> None:
    """The visible bound of the global log moves per transaction: a page may end inside a
    call, but the rest of that call is visible already and comes with the next page."""
    accounts = streams(3)
    start = await any_store.read_all(after=0, limit=10_000)
    after = start[-1].position if start else 0
    calls = 12

    async def writer(n: int) -> None:
        for i in range(calls):
            parts = [(s, [NewEvent("Posted", {"w": n, "i": i, "s": s})], ANY) for s in accounts]
            await any_store.append_streams(parts)

    async def follow() -> list[tuple[str, int, int]]:
        seen: list[tuple[str, int, int]] = []
        async for event in any_store.follow(after, batch_size=1):
            if event.stream in accounts:
                seen.append((event.stream, event.data["w"], event.data["i"]))
            if len(seen) == 2 * calls * len(accounts):
                return seen
        raise AssertionError("follow ended")  # pragma: no cover

    follower = asyncio.create_task(follow())
    await asyncio.gather(writer(0), writer(1))
    seen = await asyncio.wait_for(follower, 60)
    # Every call arrives whole and in part order, never interleaved with another call.
    for k in range(0, len(seen), len(accounts)):
        chunk = seen[k : k + len(accounts)]
        assert [s for s, _, _ in chunk] == accounts
        assert len({(w, i) for _, w, i in chunk}) == 1


async def test_concurrent_transfers_keep_the_books(database_url: str) -> None:
    """Many concurrent transfers between a few accounts, exact expected versions, retries on
    conflict, from two processes' worth of stores: the money adds up, no transfer is half
    stored, every stream's versions are gap-free and each transfer is consecutive in the log."""
    accounts = streams(4)
    stores = [await PostgresEventStore.open(database_url, max_size=4) for _ in range(2)]
    try:
        for account in accounts:
            await stores[0].append(account, [NewEvent("Opened", {"balance": 100})], NO_STREAM)
        conflicts = 0

        async def balance(store: PostgresEventStore, account: str) -> tuple[int, int]:
            history = await store.read_stream(account)
            total = 0
            for event in history:
                total += event.data.get("balance", 0) + event.data.get("amount", 0)
            return total, len(history)

        async def worker(n: int) -> None:
            nonlocal conflicts
            store = stores[n % 2]
            for i in range(12):
                source = accounts[(n + i) % len(accounts)]
                target = accounts[(n + 2 * i + 1) % len(accounts)]
                if source == target:
                    target = accounts[(accounts.index(source) + 1) % len(accounts)]
                transfer = f"t{n}-{i}"
                while True:
                    (funds, v_source), (_, v_target) = await asyncio.gather(
                        balance(store, source), balance(store, target)
                    )
                    amount = min(funds, 7)
                    try:
                        await store.append_streams(
                            [
                                (
                                    source,
                                    [NewEvent("Debited", {"amount": -amount, "transfer": transfer})],
                                    v_source,
                                ),
                                (
                                    target,
                                    [NewEvent("Credited", {"amount": amount, "transfer": transfer})],
                                    v_target,
                                ),
                            ]
                        )
                        break
                    except WrongExpectedVersion:
                        conflicts += 1

        await asyncio.gather(*(worker(n) for n in range(8)))
        assert conflicts > 0  # the test did race
        totals = [(await balance(stores[0], a))[0] for a in accounts]
        assert sum(totals) == 100 * len(accounts)
        assert all(t >= 0 for t in totals)
        log = [e for e in await stores[0].read_all(after=0, limit=10_000) if e.stream in accounts]
        by_transfer: dict[str, list[tuple[int, str, str]]] = {}
        for event in log:
            if event.type != "Opened":
                by_transfer.setdefault(event.data["transfer"], []).append(
                    (event.position, event.type, event.stream)
                )
        assert len(by_transfer) == 8 * 12
        for account in accounts:
            versions = [e.version for e in await stores[0].read_stream(account)]
            assert versions == list(range(1, len(versions) + 1))
        index = {event.position: k for k, event in enumerate(log)}
        for transfer, rows in by_transfer.items():
            # Both halves, debit first, next to each other in the global log.
            assert [t for _, t, _ in rows] == ["Debited", "Credited"], transfer
            assert index[rows[1][0]] == index[rows[0][0]] + 1, transfer
            assert rows[1][0] - rows[0][0] == 2  # one unused position between the two parts
    finally:
        for store in stores:
            await store.close()
