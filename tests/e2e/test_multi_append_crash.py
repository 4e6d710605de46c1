"""`ilji serve` SIGKILLed under multi-stream append load: every acknowledged call is fully
stored, and no call, acknowledged or not, is partly stored."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import psycopg
import pytest

from tests.e2e.server_helpers import start_server, stream_name

pytestmark = pytest.mark.slow

PARTS = 3
EVENTS_PER_PART = 2


class Caller(threading.Thread):
    """Sends multi-stream appends with fresh ids until the server dies; records every call."""

    def __init__(self, url: str, streams: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.streams = url, streams
        self.sent: list[list[str]] = []  # the ids of each call, in part order
        self.acknowledged: list[list[str]] = []
        self.refused = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while True:
                ids = [str(uuid.uuid4()) for _ in range(PARTS * EVENTS_PER_PART)]
                parts = [
                    {
                        "stream": stream,
                        "events": [
                            {"id": ids[k * EVENTS_PER_PART + i], "type": "Moved", "data": {"i": i}}
                            for i in range(EVENTS_PER_PART)
                        ],
                    }
                    for k, stream in enumerate(self.streams)
                ]
                doomed = len(self.sent) % 3 == 2
                if doomed:  # the last stream exists: this call gets a 409, and stores nothing
                    parts[-1]["expected_version"] = "no_stream"
                self.sent.append(ids)
                try:
                    response = client.post("/v1/append", json={"parts": parts})
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 201:
                    self.acknowledged.append(ids)
                elif response.status_code == 409:
                    self.refused += 1


def test_acknowledged_calls_are_whole_after_sigkill(database_url: str) -> None:
    server = start_server(database_url, env={"ILJI_ACCESS_LOG": "false"})
    streams = [stream_name() for _ in range(PARTS)]
    callers = [Caller(server.url, streams) for _ in range(6)]
    try:
        for caller in callers:
            caller.start()
        # Let the load build up (at least a few acknowledged calls), then kill mid-flight.
        deadline = time.monotonic() + 60
        while sum(len(c.acknowledged) for c in callers) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.proc.kill()
        server.proc.wait(timeout=30)
        for caller in callers:
            caller.join(timeout=30)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        server.log_path.unlink(missing_ok=True)
    acknowledged = [ids for c in callers for ids in c.acknowledged]
    sent = [ids for c in callers for ids in c.sent]
    assert len(acknowledged) >= 30
    assert sum(c.refused for c in callers) > 0  # some calls failed on their last part
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id::text, stream, position FROM ilji.events WHERE stream = ANY(%s)", (streams,)
        ).fetchall()
    stored = {row[0]: (row[1], row[2]) for row in rows}
    whole = 0
    for ids in sent:
        found = [stored.get(i) for i in ids]
        present = [f for f in found if f is not None]
        assert len(present) in (0, len(ids)), f"a call is partly stored: {len(present)} of {len(ids)}"
        if present:
            whole += 1
            # Consecutive in the log, in part order: one unused position between parts.
            positions = [p for _, p in present]
            expected = [
                positions[0] + k * (EVENTS_PER_PART + 1) + i
                for k in range(PARTS)
                for i in range(EVENTS_PER_PART)
            ]
            assert positions == expected
    for ids in acknowledged:
        assert all(i in stored for i in ids), "an acknowledged call is missing"
    assert whole >= len(acknowledged)
    # Every stream's versions stay gap-free.
    with psycopg.connect(database_url) as conn:
        for stream in streams:
            versions = [
                r[0]
                for r in conn.execute(
                    "SELECT version FROM ilji.events WHERE stream = %s ORDER BY version", (stream,)
                ).fetchall()
            ]
            assert versions == list(range(1, len(versions) + 1))
