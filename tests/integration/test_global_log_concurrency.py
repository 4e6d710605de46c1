"""The global log under concurrent writers that commit out of order.

Writers run Ilji's real append statement inside explicit transactions and hold them open
for random short times before committing, so transactions that took their position early
commit late. A follower pages through the log meanwhile. It must end up with exactly the
events of a final full read, in the same order: nothing skipped, nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid

import orjson
import psycopg
import pytest

from ilji import ANY, NewEvent, PostgresEventStore
from ilji.store import sql
from ilji.store.follow import follow_pages
from ilji.store.group_commit import Part, write_parts

APPEND_MANY = sql.load("append_many")


async def slow_writer(url: str, category: str, appends: int, rng: random.Random) -> int:
    """Append batches in explicit transactions held open for 0-20 ms before COMMIT.

    Every other transaction is a group statement of two or three parts (group commit's)."""
    written = 0
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for i in range(appends):
            n = rng.randint(1, 3)
            async with conn.transaction():
                if i % 2:
                    parts = [
                        Part(
                            f"{category}-{rng.randint(1, 5)}-{uuid.uuid4().hex[:6]}",
                            ANY,
                            [uuid.uuid4() for _ in range(n)],
                            ["Tick"] * n,
                            [orjson.dumps({"i": i}).decode()] * n,
                            ["{}"] * n,
                        )
                        for _ in range(rng.randint(2, 3))
                    ]
                    await write_parts(conn, parts)
                    n *= len(parts)
                else:
                    await conn.execute(
                        APPEND_MANY,
                        {
                            "stream": f"{category}-{rng.randint(1, 5)}-{uuid.uuid4().hex[:6]}",
                            "expected": -1,
                            "ids": [uuid.uuid4() for _ in range(n)],
                            "types": ["Tick"] * n,
                            "data": [orjson.dumps({"i": i}).decode()] * n,
                            "metadata": ["{}"] * n,
                        },
                    )
                await asyncio.sleep(rng.random() * 0.02)
            written += n
    return written


async def run_once(
    url: str, seed: int, *, writer_url: str | None = None, reader: PostgresEventStore | None = None
) -> None:
    """Writers commit out of order while a follower pages through the log: 0 skipped, 0 twice.

    `writer_url`: where the slow writers' explicit transactions go (default `url`). `reader`:
    the store the follower reads from (default the store opened on `url`, which also appends).
    """
    rng = random.Random(seed)
    category = f"conc{uuid.uuid4().hex[:10]}"
    async with await PostgresEventStore.open(url, max_size=6, poll_interval=0.05) as store:
        seen: list[int] = []
        follower_store = reader or store

        async def follower() -> None:
            async def page(cursor: int) -> list:  # type: ignore[type-arg]
                return await follower_store.read_category(category, cursor, 7)

            from ilji.store.follow import Listener

            listener = Listener(follower_store.listen_conninfo)
            try:
                async for event in follow_pages(page, 0, 7, listener, poll_interval=0.05):
                    seen.append(event.position)
            finally:
                await listener.close()

        follow_task = asyncio.create_task(follower())
        # Slow writers in explicit transactions, and fast ones through the store API.
        slow = [slow_writer(writer_url or url, category, 25, random.Random(rng.random())) for _ in range(4)]

        async def fast_writer() -> int:
            count = 0
            for _ in range(40):
                n = rng.randint(1, 4)
                await store.append(
                    f"{category}-fast{rng.randint(1, 3)}", [NewEvent("Fast", {}) for _ in range(n)]
                )
                count += n
                await asyncio.sleep(rng.random() * 0.005)
            return count

        # Six fast writers in one process: their appends go out as groups (group commit).
        totals = await asyncio.gather(*slow, *(fast_writer() for _ in range(6)))
        # Give the follower time to catch up with the last commits, then stop it.
        for _ in range(200):
            if len(seen) >= sum(totals):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # anything extra it would wrongly yield shows up here
        follow_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow_task

        final: list[int] = []
        cursor = 0
        while page := await store.read_category(category, cursor, 1000):
            final.extend(e.position for e in page)
            cursor = page[-1].position
        assert len(final) == sum(totals)
        assert len(set(seen)) == len(seen), "the follower saw an event twice"
        missed = sorted(set(final) - set(seen))
        assert not missed, f"the follower skipped {len(missed)} of {len(final)} events"
        assert seen == final, "the follower's order differs from the final read"


@pytest.mark.slow
async def test_follower_sees_every_event_exactly_once_with_out_of_order_commits(database_url: str) -> None:
    await run_once(database_url, seed=random.randrange(2**32))


async def test_a_long_open_transaction_delays_but_never_loses_events(database_url: str) -> None:
    category = f"long{uuid.uuid4().hex[:10]}"
    async with await PostgresEventStore.open(database_url, max_size=4) as store:
        before = await store.read_category(category, 0, 100)
        assert before == []
        # A writer appends and keeps its transaction open.
        held = await psycopg.AsyncConnection.connect(database_url)
        try:
            await held.execute(
                APPEND_MANY,
                {
                    "stream": f"{category}-held",
                    "expected": -1,
                    "ids": [uuid.uuid4()],
                    "types": ["Held"],
                    "data": ["{}"],
                    "metadata": ["{}"],
                },
            )
            # Later appends commit, but stay invisible to global-log readers meanwhile...
            await store.append(f"{category}-later", [NewEvent("Later", {})])
            assert await store.read_category(category, 0, 100) == []
            # ...while stream reads see them at once, and the age metric shows the holder.
            assert len(await store.read_stream(f"{category}-later")) == 1
            await asyncio.sleep(0.3)
            assert await store.oldest_transaction_age() >= 0.25
        finally:
            await held.commit()
            await held.close()
        events = await store.read_category(category, 0, 100)
        assert [e.type for e in events] == ["Held", "Later"]


async def test_a_follower_resumes_after_its_connections_are_killed(database_url: str) -> None:
    category = f"resume{uuid.uuid4().hex[:10]}"
    async with await PostgresEventStore.open(database_url, max_size=3, poll_interval=0.2) as store:
        got: list[str] = []

        async def follow() -> None:
            async for event in store.follow(0, category=category):
                got.append(event.type)

        task = asyncio.create_task(follow())
        await store.append(f"{category}-1", [NewEvent("Before", {})])
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
        # Kill every connection of this database except ours: the pool's and the listener's.
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        after = NewEvent("After", {})  # retried with the same id: idempotent if it got through
        for attempt in range(20):
            try:
                await store.append(f"{category}-1", [after])
                break
            except Exception:
                await asyncio.sleep(0.1 * (attempt + 1))
        for _ in range(100):
            if got == ["Before", "After"]:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert got == ["Before", "After"]
