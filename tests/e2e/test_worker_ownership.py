"""Several worker processes against one database: one owner at a time, fenced, fast handover.

Every applied event is recorded with the worker and fencing token that applied it. Ordered by
position, the tokens must never go down: a frozen old owner that committed after a new owner
took over would leave an older token after a newer one (and its events would hit the ledger's
primary key). Each token belongs to exactly one worker.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from ilji import PostgresEventStore
from ilji.embedded import EmbeddedPostgres
from tests.conftest import new_database
from tests.e2e.worker_fixtures import (
    append_events,
    checkpoint,
    kill,
    owner_of,
    position_of,
    row_of,
    spawn_worker,
    stop,
    verify_ledger,
    wait_until,
)

LEASE_TTL = 2.0


class Appender:
    """Appends a steady trickle of events from a thread until stopped."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with await PostgresEventStore.open(self.url, max_size=2) as store:
            while not self._stop.is_set():
                await append_events(store, 10, streams=5, per_append=2, prefix=self.prefix)
                await asyncio.sleep(0.02)

    def __enter__(self) -> Appender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def head(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT max(position) FROM ilji.events").fetchone()
    assert row is not None
    return int(row[0])


def audit(url: str, table: str) -> None:
    """Tokens never decrease along the log; each token was used by one worker only."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(f'SELECT position, worker, token FROM "{table}" ORDER BY position').fetchall()
    owners: dict[int, str] = {}
    last_token = 0
    for position, worker, token in rows:
        assert token >= last_token, f"position {position}: token {token} after {last_token} (two committers)"
        last_token = token
        assert owners.setdefault(token, worker) == worker, f"token {token} used by two workers"


def log_lines(path: Path) -> list[dict[str, object]]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.mark.slow
def test_three_workers_sigstop_and_sigkill_of_the_owner(pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    url = new_database(pg_server)
    prefix = "own"

    async def fill() -> None:
        async with await PostgresEventStore.open(url, max_size=6) as store:
            await append_events(store, 2000, streams=50, prefix=prefix)

    asyncio.run(fill())
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with Appender(url, prefix):
            for i in range(3):
                wid = f"w{i}"
                procs[wid] = spawn_worker(
                    url, "shared_ledger", wid, lease_ttl=LEASE_TTL, log=tmp_path / f"{wid}.log"
                )
            wait_until(lambda: owner_of(url, "shared") is not None and position_of(url, "shared") > 0, 20)
            frozen = owner_of(url, "shared")
            assert frozen is not None
            frozen_token = row_of(url, "shared")[3]  # type: ignore[index]

            # 1. Freeze the owner (SIGSTOP: alive, holding its connections, maybe mid-transaction).
            kill(procs[frozen], signal.SIGSTOP)
            frozen_at = time.monotonic()
            took = wait_until(lambda: owner_of(url, "shared") not in (None, frozen), 15)
            new_owner = owner_of(url, "shared")
            moved_from = position_of(url, "shared")
            wait_until(lambda: position_of(url, "shared") > moved_from, 15)
            print(f"SIGSTOP: {new_owner} took over from frozen {frozen} after {took:.2f} s")
            # 2. Wake the old owner: it must not commit, and must notice it lost the lease.
            kill(procs[frozen], signal.SIGCONT)
            time.sleep(LEASE_TTL * 1.5)
            assert procs[frozen].poll() is None, "the woken worker should keep running (as a standby)"
            assert owner_of(url, "shared") == new_owner
            assert time.monotonic() - frozen_at > LEASE_TTL

            # 3. Kill the owner (SIGKILL): someone else takes over within 10 s.
            victim = owner_of(url, "shared")
            assert victim is not None
            before = position_of(url, "shared")
            kill(procs[victim])
            procs[victim].wait()
            killed_at = time.monotonic()
            wait_until(lambda: owner_of(url, "shared") not in (None, victim), 15)
            wait_until(lambda: position_of(url, "shared") > before, 15)
            handover = time.monotonic() - killed_at
            print(
                f"SIGKILL: {owner_of(url, 'shared')} advanced the checkpoint {handover:.2f} s after the kill"
            )
            assert handover < 10.0
        target = head(url)
        wait_until(lambda: position_of(url, "shared") >= target, 30)
    finally:
        for proc in procs.values():
            kill(proc, signal.SIGCONT)
            if proc.poll() is None:
                stop(proc)
    (row,) = checkpoint(url, "shared")
    assert row[4] == "stopped" and row[5] is None, row
    verify_ledger(url, "shared", prefix=prefix)
    audit(url, "shared_applied_v1")
    # The frozen worker found out on waking up and gave the partition up without committing.
    with psycopg.connect(url, autocommit=True) as conn:
        late = conn.execute(
            'SELECT count(*) FROM "shared_applied_v1" WHERE worker = %s AND token = %s AND position > %s',
            (frozen, frozen_token, moved_from),
        ).fetchone()
    assert late == (0,)
    messages = [line["message"] for line in log_lines(tmp_path / f"{frozen}.log")]
    assert "lease lost" in messages, messages


def test_two_workers_share_partitions_and_sigterm_hands_over_at_once(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = new_database(pg_server)
    prefix = "part"

    async def fill() -> None:
        async with await PostgresEventStore.open(url, max_size=6) as store:
            await append_events(store, 4000, streams=64, prefix=prefix)

    asyncio.run(fill())
    a = spawn_worker(url, "parts_ledger", "a", lease_ttl=5.0, log=tmp_path / "a.log")
    b = spawn_worker(url, "parts_ledger", "b", lease_ttl=5.0, log=tmp_path / "b.log")
    try:
        # The workers share the partitions: two each (whoever started first gives some back).
        balanced = wait_until(lambda: sorted(owners_of(url).values()) == [2, 2], 20)
        owners = owners_of(url)
        # Stop whichever owns partition 0: its partitions move to the other worker well within
        # the 5 s lease, because a stopping worker releases them.
        leaving = checkpoint(url, "parts")[0][2]
        staying = "b" if leaving == "a" else "a"
        stopped_at = time.monotonic()
        assert stop(a if leaving == "a" else b) == 0
        wait_until(lambda: all(r[2] == staying for r in checkpoint(url, "parts")), 10)
        handover = time.monotonic() - stopped_at
        print(
            f"balanced {owners} after {balanced:.2f} s; "
            f"SIGTERM of {leaving}: all partitions with {staying} after {handover:.2f} s"
        )
        assert handover < 5.0
        # Start a third worker: it gets its share, then dies (SIGKILL) and its partitions
        # come back to the survivor once its leases expire.
        c = spawn_worker(url, "parts_ledger", "c", lease_ttl=5.0, log=tmp_path / "c.log")
        wait_until(lambda: owners_of(url).get("c", 0) == 2, 20)
        kill(c)
        c.wait()
        killed_at = time.monotonic()
        wait_until(lambda: owners_of(url) == {staying: 4}, 15)
        killed_handover = time.monotonic() - killed_at
        print(f"SIGKILL of c: all partitions with {staying} after {killed_handover:.2f} s")
        assert killed_handover < 10.0
        target = head(url)
        wait_until(lambda: all(r[1] >= target for r in checkpoint(url, "parts")), 20)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                stop(proc)
    verify_ledger(url, "parts", prefix=prefix)
    audit_partitions(url)


def owners_of(url: str) -> dict[str, int]:
    """How many partitions of `parts` each worker owns."""
    counts: dict[str, int] = {}
    for row in checkpoint(url, "parts"):
        if row[2]:
            counts[row[2]] = counts.get(row[2], 0) + 1
    return counts


def audit_partitions(url: str) -> None:
    """Each stream was applied by one partition owner at a time (tokens per stream never go down)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute('SELECT stream, worker, token FROM "parts_applied_v1" ORDER BY seq').fetchall()
    last: dict[str, tuple[str, int]] = {}
    for stream, worker, token in rows:
        if stream in last:
            assert token >= last[stream][1], f"{stream}: token went down"
        last[stream] = (worker, token)
