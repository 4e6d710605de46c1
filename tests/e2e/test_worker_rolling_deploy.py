"""A rolling deploy (issue 13, item 2): two worker processes with two code versions of one
projection, through a whole rebuild and cutover, appends flowing throughout.

The old code (version 1, one partition) must keep serving version 1 and never touch version 2;
the new code (version 2, two partitions) must build version 2 and never touch version 1; after
the cutover the old worker stands idle (no leases) and says so. Every applied event is
recorded with the code version and worker that applied it, once per version (primary keys).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ilji import PostgresEventStore
from ilji.embedded import EmbeddedPostgres
from ilji.projections import status
from ilji.projections.shapes import projection_json
from tests.conftest import new_database
from tests.e2e.test_worker_ownership import Appender, head
from tests.e2e.worker_fixtures import append_events, checkpoint, spawn_worker, stop, verify_ledger, wait_until

NAME = "rolling"
LEASE_TTL = 2.0


def query(url: str, text: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(text, params).fetchall()  # type: ignore[arg-type]


def active_version(url: str) -> int:
    rows = query(url, "SELECT active_version FROM ilji.projections WHERE name = %s", NAME)
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def worker_row(url: str, worker: str) -> tuple[object, ...] | None:
    """(code_version, versions, state, error) as the worker last reported."""
    rows = query(
        url,
        "SELECT code_version, versions, state, error FROM ilji.projection_workers"
        " WHERE projection = %s AND worker_id = %s",
        NAME,
        worker,
    )
    return rows[0] if rows else None


async def status_json(url: str) -> dict[str, Any]:
    """The projection's status as `GET /v1/projections/{name}` answers it."""
    async with await PostgresEventStore.open(url, max_size=2) as store:
        (st,) = await status(store, NAME)
    return projection_json(st)


def positions(url: str, version: int) -> list[int]:
    return [int(r[1]) for r in checkpoint(url, NAME, version)]


@pytest.mark.slow
def test_old_and_new_code_each_run_only_their_own_version(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = new_database(pg_server)
    prefix = "roll"

    async def fill() -> None:
        async with await PostgresEventStore.open(url, max_size=6) as store:
            await append_events(store, 1500, streams=40, prefix=prefix)

    asyncio.run(fill())
    old = spawn_worker(url, "rolling_v1", "old", lease_ttl=LEASE_TTL, log=tmp_path / "old.log")
    new = None
    try:
        with Appender(url, prefix):
            wait_until(lambda: positions(url, 1) and positions(url, 1)[0] >= 1500, 30)
            # The deploy starts: a pod with the new code joins.
            new = spawn_worker(url, "rolling_v2", "new", lease_ttl=LEASE_TTL, log=tmp_path / "new.log")
            wait_until(lambda: len(positions(url, 2)) == 2, 20)
            assert worker_row(url, "new") is not None
            assert worker_row(url, "new")[1:3] == ([2], "building")  # type: ignore[index]
            assert worker_row(url, "old")[1:3] == ([1], "serving")  # type: ignore[index]
            wait_until(lambda: active_version(url) == 2, 60)
            cut_at = head(url)
            # After the cutover the old code stands idle: no version, no lease.
            wait_until(lambda: worker_row(url, "old")[1:3] == ([], "idle"), 15)  # type: ignore[index]
            assert old.poll() is None, "the old worker keeps running, idle"
            wait_until(lambda: worker_row(url, "new")[1:3] == ([2], "serving"), 15)  # type: ignore[index]
            workers = {w["worker"]: w for w in asyncio.run(status_json(url))["workers"]}
            assert (workers["old"]["code_version"], workers["old"]["state"]) == (1, "idle")
            assert (workers["new"]["code_version"], workers["new"]["state"]) == (2, "serving")
            wait_until(lambda: min(positions(url, 2)) > cut_at, 20)
        last = head(url)
        wait_until(lambda: min(positions(url, 2)) >= last, 30)
        owners = query(
            url,
            "SELECT DISTINCT owner FROM ilji.projection_checkpoints"
            " WHERE projection = %s AND lease_expires_at > clock_timestamp()",
            NAME,
        )
        assert owners == [("new",)], owners
    finally:
        for proc in (old, new):
            if proc is not None and proc.poll() is None:
                stop(proc)
    # Version 2: every event exactly once, by the new code only, and nothing failed.
    summary = verify_ledger(url, NAME, version=2, prefix=prefix)
    by_code = query(url, f"SELECT code, worker, count(*) FROM {NAME}_code_v2 GROUP BY code, worker")
    assert by_code == [(2, "new", summary["events"])], by_code
    assert [r[4:] for r in checkpoint(url, NAME, 2)] == [("stopped", None)] * 2
    # Version 1: by the old code only, every event up to its last checkpoint exactly once.
    (v1,) = checkpoint(url, NAME, 1)
    assert v1[4:] == ("retired", None), v1
    by_code = query(url, f"SELECT code, worker, count(*) FROM {NAME}_code_v1 GROUP BY code, worker")
    expected = query(
        url,
        "SELECT count(*) FROM ilji.visible_events WHERE stream LIKE %s AND position <= %s",
        f"{prefix}-%",
        v1[1],
    )
    assert by_code == [(1, "old", expected[0][0])], (by_code, expected)
    applied = query(
        url,
        f"SELECT count(*) FROM {NAME}_applied_v1 AS a JOIN ilji.visible_events AS e ON e.id = a.event_id"
        " WHERE e.position <= %s",
        v1[1],
    )
    assert applied == expected
    assert query(url, "SELECT count(*) FROM ilji.parked_events") == [(0,)]
