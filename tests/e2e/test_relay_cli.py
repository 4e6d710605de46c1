"""`ilji relay run` and `ilji relay status` as a user runs them: real processes, NATS and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.test_cli import ILJI, run
from tests.e2e.worker_fixtures import ROOT, position_of
from tests.nats_fixtures import NatsServer, start_nats

pytestmark = pytest.mark.slow

MAPPING = "tests.e2e.relay_fixtures:integration"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["relay", "status", "nosuch"], 4, "relay 'nosuch' never ran"),
        (["relay", "run", "--mapping", "nosuch.module:x", "--nats-url", "nats://127.0.0.1:1"], 2, "mapping"),
        (
            ["relay", "run", "--mapping", "tests.e2e.relay_fixtures:ticked", "--nats-url", "nats://x:1"],
            2,
            "not an",
        ),
        (["relay", "run", "--mapping", MAPPING], 2, "no NATS URL"),
    ],
)
def test_relay_user_errors_are_one_line(database_url: str, args: list[str], code: int, message: str) -> None:
    result = run(*args, "--database-url", database_url, env=env())
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_relay_run_then_status(database_url: str, nats_server: NatsServer, tmp_path: Path) -> None:
    stream = f"acct-{uuid.uuid4().hex[:8]}"
    for i in range(3):
        appended = run(
            "append", stream, "-t", "Tick", "-d", json.dumps({"i": i + 1}), "--database-url", database_url
        )
        assert appended.returncode == 0, appended.stderr
    log = (tmp_path / "relay.log").open("ab")
    args = ["--mapping", MAPPING, "--stream", "CLI", "--create-stream", "--port", "0", "--lease-ttl", "1"]
    relay = subprocess.Popen(
        [*ILJI, "relay", "run", *args, "--poll-interval", "0.05", "--database-url", database_url],
        env={**env(), "ILJI_RELAY_NATS_URL": nats_server.url},
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute("SELECT max(position) FROM ilji.events").fetchone()
        assert row is not None
        while min(position_of(database_url, "relay_e2e", p) for p in (0, 1)) < row[0]:
            assert relay.poll() is None and time.monotonic() < deadline, "relay did not catch up"
            time.sleep(0.05)
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(15) == 0
    result = run("relay", "status", "relay_e2e", "--json", "--database-url", database_url)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["name"] == "relay_e2e"
    assert status["events_behind"] == 0
    assert status["parked"] == 0
    # SIGTERM released the leases: nobody owns the partitions now.
    assert [p["state"] for p in status["partitions"]] == ["stopped", "stopped"]
    table = run("relay", "status", "relay_e2e", "--database-url", database_url)
    assert table.returncode == 0
    assert "0/2" in table.stdout and "1/2" in table.stdout
