"""Crash test of the relay: `ilji relay run` SIGKILLed mid-publish while appends flow, then the
JetStream stream compared with the mapped events: none missing, none twice, order kept.

A real `nats-server -js` and real relay processes (the CLI). Each relay is killed once it is
publishing (the stream grows), at a random moment, so kills land between a publish and its
acknowledgement, and between the acknowledgement and the checkpoint commit; the next relay
(alternating relay ids: a new id waits for the killed relay's leases to expire, the same id
takes them back at once) republishes from the checkpoint, and
JetStream drops the copies by their `Nats-Msg-Id`. A last relay catches up with the head.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import psycopg
import pytest

from ilji import NewEvent, PostgresEventStore
from tests.e2e.relay_fixtures import integration
from tests.e2e.worker_fixtures import ROOT, checkpoint, kill, position_of, stop
from tests.nats_fixtures import NatsServer, free_port, start_nats, stored_messages

pytestmark = pytest.mark.slow

#: SIGKILLs before the last relay is left to finish.
KILLS = 5
STREAM = "E2E"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def spawn_relay(
    database_url: str, nats_url: str, port: int, log: Path, relay_id: str
) -> subprocess.Popen[bytes]:
    """`ilji relay run` as a real process."""
    args = [
        sys.executable, "-m", "ilji.cli", "relay", "run",
        "--mapping", "tests.e2e.relay_fixtures:integration",
        "--nats-url", nats_url,
        "--stream", STREAM,
        "--create-stream",
        "--relay-id", relay_id,
        "--lease-ttl", "1",
        "--poll-interval", "0.05",
        "--port", str(port),
        "--database-url", database_url,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = log.open("ab")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=out)


def duplicates_dropped(port: int) -> int:
    """The relay's `ilji_relay_duplicates_total` (republished messages JetStream recognised)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0
    match = re.search(r"^ilji_relay_duplicates_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    return int(float(match.group(1))) if match else 0


async def stream_count(nc: nats.NATS) -> int:
    try:
        info = await nc.jetstream().stream_info(STREAM)
    except Exception:
        return 0  # not created yet
    return int(info.state.messages)


async def append_forever(store: PostgresEventStore, stop_flag: asyncio.Event) -> None:
    """Small appends of mixed types over 12 streams until told to stop."""
    streams = [f"acct-{uuid.uuid4().hex[:10]}" for _ in range(12)]
    i = 0
    while not stop_flag.is_set():
        batch = []
        for stream in random.sample(streams, 3):
            events = []
            for _ in range(4):
                events.append(NewEvent(("Tick", "Tack", "Tock")[i % 3], {"i": i}))
                i += 1
            batch.append(store.append(stream, events))
        await asyncio.gather(*batch)
        await asyncio.sleep(0.01)


def head(url: str) -> int:
    """The last position the relay reads: of the types it asks for, the mapped ones (`Tock` is
    not; nor are the `$audit` records each `ilji relay run` start may write). A final batch
    that ends with a `Tock` leaves the checkpoints at the event before it."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(max(position), 0) FROM ilji.events WHERE type IN ('Tick', 'Tack')"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_relay_sigkilled_mid_publish_loses_and_duplicates_nothing(
    store: PostgresEventStore,
    database_url: str,
    nats_server: NatsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "relay.log"
    stop_appending = asyncio.Event()
    appender = asyncio.create_task(append_forever(store, stop_appending))
    nc = await nats.connect(nats_server.url)
    dropped = 0
    try:
        for kill_number in range(KILLS):
            before = await stream_count(nc)
            port = free_port()
            # Alternate ids: a restart under the same id takes its leases back at once (new
            # fencing token); another relay must wait until the killed one's leases expire.
            proc = spawn_relay(database_url, nats_server.url, port, log, f"relay-{kill_number % 2}")
            # Publishing now: the stream grows. Then a random moment inside the flow.
            for _ in range(600):
                if await stream_count(nc) > before + 30 or proc.poll() is not None:
                    break
                await asyncio.sleep(0.02)
            assert proc.poll() is None, f"relay exited: see {log}"
            await asyncio.sleep(random.uniform(0.0, 0.2))
            dropped += duplicates_dropped(port)
            kill(proc)
            proc.wait()
        stop_appending.set()
        await appender
        target = head(database_url)
        port = free_port()
        last = spawn_relay(database_url, nats_server.url, port, log, "relay-last")
        try:
            deadline = time.monotonic() + 60
            while min(position_of(database_url, "relay_e2e", p) for p in (0, 1)) < target:
                assert last.poll() is None, f"relay exited: see {log}"
                rows = checkpoint(database_url, "relay_e2e")
                assert time.monotonic() < deadline, f"checkpoints {rows} did not reach {target}"
                await asyncio.sleep(0.05)
            dropped += duplicates_dropped(port)
        finally:
            assert stop(last) == 0
    finally:
        stop_appending.set()
        with contextlib.suppress(Exception):
            await appender
        await nc.close()
    assert min(position_of(database_url, "relay_e2e", p) for p in (0, 1)) >= target

    # What should be there: every event whose mapping publishes something, in log order.
    expected: dict[str, tuple[str, int]] = {}
    after = 0
    while page := await store.read_all(after, 1000, ["Tick", "Tack", "Tock"]):
        for event in page:
            if integration.to_message(event) is not None:
                expected[str(event.id)] = (event.stream, event.version)
        after = page[-1].position
    messages = await stored_messages(nats_server.url, STREAM)
    ids = [m.headers["Nats-Msg-Id"] for m in messages]
    missing = set(expected) - set(ids)
    duplicates = len(ids) - len(set(ids))
    unexpected = set(ids) - set(expected)
    # Order: along the JetStream stream, each Ilji stream's versions grow, per subject and overall.
    violations = 0
    last_per_subject: dict[tuple[str, str], int] = {}
    last_per_stream: dict[str, int] = {}
    for m in messages:
        stream, version = m.headers["Ilji-Stream"], int(m.headers["Ilji-Stream-Version"])
        key = (m.subject, stream)
        if version <= last_per_subject.get(key, 0) or version <= last_per_stream.get(stream, 0):
            violations += 1
        last_per_subject[key] = last_per_stream[stream] = version
    subjects = sorted({m.subject for m in messages})
    with capsys.disabled():  # the counts belong in CI's output, passing or not
        print(
            f"\nrelay crash test: {KILLS} SIGKILLs, {len(expected)} mapped events, {len(messages)} stored "
            f"on {subjects}; missing {len(missing)}, duplicates {duplicates}, unexpected {len(unexpected)}, "
            f"order violations {violations}; republished copies JetStream dropped: {dropped}"
        )
    assert not missing, f"{len(missing)} mapped events never reached JetStream"
    assert duplicates == 0
    assert not unexpected, "events that no mapping publishes reached JetStream"
    assert violations == 0
    assert subjects == ["e2e.acct.Tacked.v1", "e2e.acct.Ticked.v1"]
