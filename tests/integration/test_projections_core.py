"""Projections on a real PostgreSQL, in one process: checkpoints, fencing, poison, waits, status.

The worker-process scenarios (crashes, several workers, SIGSTOP) are in tests/e2e.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import psycopg
import pytest

from ilji import NewEvent, PostgresEventStore
from ilji.projections import (
    Connection,
    Context,
    Projection,
    ProjectionNotFound,
    WaitTimeout,
    list_parked,
    pause,
    replay_parked,
    resume,
    status,
    wait_for_position,
)
from ilji.projections.admin import reached
from ilji.projections.runner import PartitionRunner
from ilji.projections.worker import register
from ilji.store.follow import Listener
from tests.e2e.worker_fixtures import append_events, ledger, running_on, verify_ledger


def prefix() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


async def test_projection_applies_every_event_once_and_follows_live(
    store: PostgresEventStore, database_url: str
) -> None:
    name, pre = f"core_{uuid.uuid4().hex[:6]}", prefix()
    last = await append_events(store, 3000, prefix=pre)
    async with running_on(database_url, [ledger(name)], worker_id="w1", lease_ttl=2, poll_interval=0.2):
        await wait_for_position(store, name, last, timeout=20)
        # Live: an append shows up in the read model shortly after.
        result = await store.append(f"{pre}-live", [NewEvent("Tick", {})])
        await wait_for_position(store, name, result.last_position, timeout=5)
        (st,) = await status(store, name)
        assert st.state == "running"
        assert st.owners == ["w1"]
        assert st.checkpoint >= result.last_position
        assert st.events_behind == 0 and st.lag_seconds == 0.0
        assert st.partitions[0].events_applied >= 3001
    summary = verify_ledger(database_url, name, prefix=pre)
    assert summary["events"] == 3001
    # A clean stop released the lease: nobody owns it, state stopped.
    (st,) = await status(store, name)
    assert st.partitions[0].owner is None
    assert st.state == "stopped"


async def test_restart_continues_from_the_checkpoint(store: PostgresEventStore, database_url: str) -> None:
    name, pre = f"restart_{uuid.uuid4().hex[:6]}", prefix()
    last = await append_events(store, 500, prefix=pre)
    async with running_on(database_url, [ledger(name)], worker_id="a", lease_ttl=2):
        await wait_for_position(store, name, last, timeout=10)
    last = await append_events(store, 500, prefix=pre)
    async with running_on(database_url, [ledger(name)], worker_id="b", lease_ttl=2):
        await wait_for_position(store, name, last, timeout=10)
    assert verify_ledger(database_url, name, prefix=pre)["events"] == 1000


async def _lease_row(url: str, name: str) -> tuple[int, str | None, int]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT position, owner, fencing_token FROM ilji.projection_checkpoints WHERE projection = %s",
            (name,),
        )
        row = await cur.fetchone()
    assert row is not None
    return row[0], row[1], row[2]


async def test_stale_owner_cannot_commit_after_a_takeover(
    store: PostgresEventStore, database_url: str
) -> None:
    """The fence: a runner whose lease was taken over has its whole batch rolled back."""
    name, pre = f"fence_{uuid.uuid4().hex[:6]}", prefix()
    projection = ledger(name, batch_size=10)
    await register(store, projection)
    async with store.database.connection() as conn:
        await conn.execute(
            "INSERT INTO ilji.projection_checkpoints (projection, version, partition, partitions)"
            " VALUES (%s, 1, 0, 1)",
            (name,),
        )
    await append_events(store, 20, streams=2, per_append=10, prefix=pre)
    listener = Listener(store.conninfo)
    old = PartitionRunner(store, listener, projection, version=1, partition=0, worker_id="old", lease_ttl=60)
    new = PartitionRunner(store, listener, projection, version=1, partition=0, worker_id="new", lease_ttl=60)
    try:
        lease_old = await old.leases.acquire()
        assert lease_old is not None
        await old._setup(lease_old)
        # Nobody else can take a live lease.
        assert await new.leases.acquire() is None
        # The old owner freezes past its lease (simulated by expiring it), a new owner takes over.
        async with store.database.connection() as conn:
            await conn.execute(
                "UPDATE ilji.projection_checkpoints SET lease_expires_at = clock_timestamp() - interval '1 s'"
                " WHERE projection = %s",
                (name,),
            )
        lease_new = await new.leases.acquire()
        assert lease_new is not None and lease_new.token == lease_old.token + 1
        # The old owner wakes up and tries to commit a batch: rejected, nothing written.
        page = await store.read_category(pre, 0, 10)
        with pytest.raises(Exception, match="another worker"):
            await old._commit(lease_old, page, page[-1].position, "running")
        position, owner, token = await _lease_row(database_url, name)
        assert (position, owner, token) == (0, "new", lease_new.token)
        async with store.database.connection() as conn:
            cur = await conn.execute(f'SELECT count(*) FROM "{name}_applied_v1"')
            assert await cur.fetchone() == (0,)
        # The new owner commits normally.
        await new._commit(lease_new, page, page[-1].position, "running")
        assert (await _lease_row(database_url, name))[0] == page[-1].position
        assert old.metrics.commits_rejected == 1
    finally:
        await listener.close()


async def test_expired_lease_nobody_took_may_still_commit(
    store: PostgresEventStore, database_url: str
) -> None:
    """Documented choice: the token is unchanged, so a late commit is as safe as a timely one."""
    name, pre = f"late_{uuid.uuid4().hex[:6]}", prefix()
    projection = ledger(name, batch_size=10)
    await register(store, projection)
    async with store.database.connection() as conn:
        await conn.execute(
            "INSERT INTO ilji.projection_checkpoints (projection, version, partition, partitions)"
            " VALUES (%s, 1, 0, 1)",
            (name,),
        )
    await append_events(store, 10, streams=1, per_append=10, prefix=pre)
    listener = Listener(store.conninfo)
    runner = PartitionRunner(
        store, listener, projection, version=1, partition=0, worker_id="slow", lease_ttl=60
    )
    try:
        lease = await runner.leases.acquire()
        assert lease is not None
        await runner._setup(lease)
        async with store.database.connection() as conn:
            await conn.execute(
                "UPDATE ilji.projection_checkpoints SET lease_expires_at = clock_timestamp() - interval '1 s'"
                " WHERE projection = %s",
                (name,),
            )
        page = await store.read_category(pre, 0, 10)
        await runner._commit(lease, page, page[-1].position, "running")
        assert await _lease_row(database_url, name) == (page[-1].position, "slow", lease.token)
    finally:
        await listener.close()


async def test_concurrent_acquirers_exactly_one_wins(store: PostgresEventStore, database_url: str) -> None:
    name = f"race_{uuid.uuid4().hex[:6]}"
    projection = ledger(name)
    await register(store, projection)
    async with store.database.connection() as conn:
        await conn.execute(
            "INSERT INTO ilji.projection_checkpoints (projection, version, partition, partitions)"
            " VALUES (%s, 1, 0, 1)",
            (name,),
        )
    listener = Listener(store.conninfo)
    try:
        for _ in range(5):
            runners = [
                PartitionRunner(store, listener, projection, version=1, partition=0, worker_id=f"w{i}")
                for i in range(8)
            ]
            leases = await asyncio.gather(*(r.leases.acquire() for r in runners))
            winners = [lease for lease in leases if lease is not None]
            assert len(winners) == 1
            async with store.database.connection() as conn:
                await conn.execute(
                    "UPDATE ilji.projection_checkpoints SET owner = NULL WHERE projection = %s", (name,)
                )
    finally:
        await listener.close()


async def test_poison_event_is_parked_others_flow_and_replay_applies_once(
    store: PostgresEventStore, database_url: str
) -> None:
    name, pre = f"poison_{uuid.uuid4().hex[:6]}", prefix()
    projections = [ledger(name, batch_size=50)]
    async with running_on(
        database_url, projections, worker_id="w", lease_ttl=1.5, poll_interval=0.1
    ) as worker:
        await append_events(store, 120, streams=4, per_append=10, prefix=pre)
        bad = await store.append(f"{pre}-bad", [NewEvent("Tick", {"poison": name})])
        last = await append_events(store, 120, streams=4, per_append=10, prefix=pre)
        # The others keep flowing: the projection gets past the poison event.
        await wait_for_position(store, name, last, timeout=15)
        parked = await list_parked(store, name)
        assert [(p.position, p.stream, p.attempts) for p in parked] == [(bad.first_position, f"{pre}-bad", 3)]
        assert "poison event" in parked[0].error
        (st,) = await status(store, name)
        assert st.parked == 1 and st.state == "running"
        assert worker.metrics()[0].parked == 1 and worker.metrics()[0].retries == 2
        # Replaying before the fix fails again and keeps it parked.
        assert await replay_parked(store, name) == 1
        await _until(lambda: _replay_request_cleared(store, name), 10)
        assert len(await list_parked(store, name)) == 1
        # Fix, replay: applied exactly once, even when asked twice.
        async with store.database.connection() as conn:
            await conn.execute(f'INSERT INTO "{name}_fixed" VALUES (true)')
        bad_id = parked[0].event_id
        assert await replay_parked(store, name, [bad_id]) == 1
        await _until(lambda: _replayed(store, name), 10)
        assert await replay_parked(store, name, [bad_id]) == 0
    assert await list_parked(store, name) == []
    (done,) = await list_parked(store, name, include_replayed=True)
    assert done.replayed_at is not None
    async with store.database.connection() as conn:
        cur = await conn.execute(f'SELECT count(*) FROM "{name}_applied_v1" WHERE event_id = %s', (bad_id,))
        assert await cur.fetchone() == (1,)
    summary = verify_ledger(database_url, name, prefix=pre)
    assert summary["events"] == 241


async def _replay_request_cleared(store: PostgresEventStore, name: str) -> bool:
    async with store.database.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM ilji.parked_events"
            " WHERE projection = %s AND replay_requested_at IS NOT NULL",
            (name,),
        )
        row = await cur.fetchone()
    return row == (0,)


async def _replayed(store: PostgresEventStore, name: str) -> bool:
    return not await list_parked(store, name)


async def _until(predicate: Callable[[], Awaitable[bool]], within: float) -> None:
    """Poll an async predicate until it holds (the database has no event to wait on here)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_stop_policy_fails_the_projection_until_resumed(
    store: PostgresEventStore, database_url: str
) -> None:
    name, pre = f"stop_{uuid.uuid4().hex[:6]}", prefix()
    projection = ledger(name, on_poison="stop", batch_size=20)
    async with running_on(database_url, [projection], worker_id="w", lease_ttl=1.5, poll_interval=0.1):
        before = await append_events(store, 30, streams=3, per_append=10, prefix=pre)
        await store.append(f"{pre}-bad", [NewEvent("Tick", {"poison": name})])
        after = await append_events(store, 30, streams=3, per_append=10, prefix=pre)
        await wait_for_position(store, name, before, timeout=10)

        async def failed() -> bool:
            (st,) = await status(store, name)
            return st.state == "failed"

        await _until(failed, 10)
        (st,) = await status(store, name)
        assert "poison event" in (st.partitions[0].error or "")
        assert not await reached(store, name, after)
        # Fix and resume: the partition retries the event and goes on.
        async with store.database.connection() as conn:
            await conn.execute(f'INSERT INTO "{name}_fixed" VALUES (true)')
        await resume(store, name)
        await wait_for_position(store, name, after, timeout=10)
    assert verify_ledger(database_url, name, prefix=pre)["events"] == 61


async def test_pause_releases_the_lease_and_resume_continues(
    store: PostgresEventStore, database_url: str
) -> None:
    name, pre = f"pause_{uuid.uuid4().hex[:6]}", prefix()
    async with running_on(database_url, [ledger(name)], worker_id="w", lease_ttl=1.0, poll_interval=0.1):
        last = await append_events(store, 50, prefix=pre)
        await wait_for_position(store, name, last, timeout=10)
        await pause(store, name)

        async def paused_and_free() -> bool:
            (st,) = await status(store, name)
            return st.state == "paused" and st.partitions[0].owner is None

        await _until(paused_and_free, 5)
        last = await append_events(store, 50, prefix=pre)
        await asyncio.sleep(0.5)
        assert not await reached(store, name, last)
        # Status shows the lag: 50 events behind (positions are sparse, events are counted),
        # the oldest of them waiting for about the time we slept.
        (st,) = await status(store, name)
        assert st.events_behind == 50
        assert 0.3 < st.lag_seconds < 30
        assert st.partitions[0].positions_behind >= 50
        assert st.events_per_second == 0.0
        await resume(store, name)
        await wait_for_position(store, name, last, timeout=10)
    assert verify_ledger(database_url, name, prefix=pre)["events"] == 100


async def test_wait_for_position_timeout_and_unknown_projection(store: PostgresEventStore) -> None:
    name = f"nowork_{uuid.uuid4().hex[:6]}"
    with pytest.raises(ProjectionNotFound):
        await wait_for_position(store, name, 1, timeout=0.05)
    await register(store, ledger(name))
    async with store.database.connection() as conn:
        await conn.execute(
            "INSERT INTO ilji.projection_checkpoints (projection, version, partition, partitions)"
            " VALUES (%s, 1, 0, 1)",
            (name,),
        )
    result = await store.append(f"x-{uuid.uuid4().hex}", [NewEvent("Tick", {})])
    with pytest.raises(WaitTimeout):
        await wait_for_position(store, name, result.last_position, timeout=0.1)
    with pytest.raises(ProjectionNotFound):
        await status(store, "no_such_projection")
    with pytest.raises(ProjectionNotFound):
        await pause(store, "no_such_projection")


async def test_filtered_projection_reaches_positions_of_events_it_does_not_read(
    store: PostgresEventStore, database_url: str
) -> None:
    name, pre = f"filter_{uuid.uuid4().hex[:6]}", prefix()
    projection = ledger(name, category=pre)
    async with running_on(database_url, [projection], worker_id="w", lease_ttl=2, poll_interval=0.1):
        last = await append_events(store, 40, prefix=pre)
        await wait_for_position(store, name, last, timeout=10)
        other = await store.append(f"other{uuid.uuid4().hex[:6]}-1", [NewEvent("Tick", {})])
        # The projection never reads that event, yet "has it dealt with everything up to it?" is yes.
        await wait_for_position(store, name, other.last_position, timeout=5)
    assert verify_ledger(database_url, name, prefix=pre)["events"] == 40


async def test_a_position_whose_event_was_hidden_before_it_was_read_is_reached(
    store: PostgresEventStore, database_url: str
) -> None:
    name, pre = f"hidden_{uuid.uuid4().hex[:6]}", prefix()
    projection = ledger(name, category=pre)
    async with running_on(database_url, [projection], worker_id="w", lease_ttl=2, poll_interval=0.1):
        last = await append_events(store, 5, prefix=pre)
        await wait_for_position(store, name, last, timeout=10)
        await pause(store, name)

        async def paused_and_free() -> bool:
            (st,) = await status(store, name)
            return st.state == "paused" and st.partitions[0].owner is None

        await _until(paused_and_free, 5)
        gone = await store.append(f"{pre}-gone", [NewEvent("Tick", {})])
        await store.delete_stream(f"{pre}-gone")  # hidden before the projection could read it
        await resume(store, name)
        # The projection will never see that event, so "everything up to it" is already dealt with.
        await wait_for_position(store, name, gone.last_position, timeout=5)
    assert verify_ledger(database_url, name, prefix=pre)["events"] == 5


async def test_a_registered_projection_without_partitions_yet_has_a_status(store: PostgresEventStore) -> None:
    # Between a worker's register and its partition setup there are no checkpoint rows.
    name = f"fresh_{uuid.uuid4().hex[:6]}"
    await register(store, ledger(name, category="freshcat"))
    (found,) = await status(store, name)
    assert (found.name, found.partitions, found.category) == (name, [], "freshcat")
    assert found.state == "stopped" and found.events_behind == 0
    await pause(store, name)
    (found,) = await status(store, name)
    assert found.state == "paused"


async def test_partitions_are_shared_between_workers(store: PostgresEventStore, database_url: str) -> None:
    name, pre = f"parts_{uuid.uuid4().hex[:6]}", prefix()
    async with (
        running_on(
            database_url, [ledger(name, partitions=4, batch_size=100)], worker_id="w1", lease_ttl=1.5
        ) as w1,
        running_on(
            database_url, [ledger(name, partitions=4, batch_size=100)], worker_id="w2", lease_ttl=1.5
        ) as w2,
    ):
        last = await append_events(store, 2000, streams=50, prefix=pre)
        await wait_for_position(store, name, last, timeout=20)

        async def balanced() -> bool:
            return sorted([len(w1.owned()), len(w2.owned())]) == [2, 2]

        await _until(balanced, 10)
        (st,) = await status(store, name)
        assert len(st.partitions) == 4
        assert sorted(st.owners) == ["w1", "w2"]
    verify_ledger(database_url, name, prefix=pre)
    # A partition may have moved (rebalancing), but per stream the fencing tokens only grow:
    # never two owners of one stream's partition at once.
    async with store.database.connection() as conn:
        cur = await conn.execute(
            f'SELECT stream, token FROM "{name}_applied_v1" WHERE stream LIKE %s ORDER BY seq', (f"{pre}-%",)
        )
        rows = await cur.fetchall()
    last_token: dict[str, int] = {}
    for stream, token in rows:
        assert token >= last_token.get(stream, 0)
        last_token[stream] = token
    assert len(last_token) == 50


async def test_a_failing_setup_fails_the_partition_instead_of_looping(
    store: PostgresEventStore, database_url: str
) -> None:
    name = f"setup_{uuid.uuid4().hex[:6]}"

    class Broken(Projection):
        async def setup(self, conn: Connection, ctx: Context) -> None:
            await conn.execute("CREATE TABLE broken (")

    broken = type("B", (Broken,), {"name": name})()
    async with running_on(database_url, [broken], worker_id="w", lease_ttl=1.5, poll_interval=0.1):

        async def failed() -> bool:
            items = await status(store)
            return any(s.name == name and s.state == "failed" for s in items)

        await _until(failed, 10)
    (st,) = await status(store, name)
    assert "setup failed" in (st.partitions[0].error or "")
