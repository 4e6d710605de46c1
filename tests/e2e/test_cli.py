"""The `ilji` command as a user runs it: real processes, real PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

ILJI = [sys.executable, "-m", "ilji.cli"]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ILJI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


@pytest.fixture
def db(database_url: str) -> list[str]:
    return ["--database-url", database_url]


def test_append_read_and_tail_as_json(db: list[str]) -> None:
    stream = f"cli-{uuid.uuid4().hex[:8]}"
    first = run(
        "append",
        stream,
        "--type",
        "Opened",
        "--data",
        '{"n": 1}',
        "--expected-version",
        "no_stream",
        "--json",
        *db,
    )
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert (result["stream"], result["first_version"], result["last_version"]) == (stream, 1, 1)

    event_id = str(uuid.uuid4())
    for _ in range(2):  # the retry with the same id is idempotent
        again = run("append", stream, "-t", "Noted", "-d", "{}", "--id", event_id, "-e", "1", "--json", *db)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["last_version"] == 2

    read = run("read", stream, "--json", *db)
    assert read.returncode == 0, read.stderr
    events = json.loads(read.stdout)["events"]
    assert [(e["version"], e["type"]) for e in events] == [(1, "Opened"), (2, "Noted")]
    assert events[0]["data"] == {"n": 1}
    assert events[0]["recorded_at"].endswith("Z")

    tail = run("tail", "--category", "cli", "--json", *db)
    assert tail.returncode == 0, tail.stderr
    page = json.loads(tail.stdout)
    assert stream in {e["stream"] for e in page["events"]}
    assert page["next"] == page["events"][-1]["position"]

    human = run("read", stream, *db)
    assert human.returncode == 0
    assert "Opened" in human.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["append", "has space", "--type", "T"], 2, "stream"),
        (["append", "ok-1", "--type", ""], 2, "type"),
        (["append", "ok-1", "--type", "T", "--data", "[1]"], 2, "--data: must be a JSON object"),
        (["append", "ok-1", "--type", "T", "--data", "{nope"], 2, "--data: is not valid JSON"),
        (["append", "ok-1", "--type", "T", "--id", "xyz"], 2, "--id"),
        (["append", "ok-1", "--type", "T", "--expected-version", "latest"], 2, "expected_version"),
        (["read", "missing-stream-xyz"], 4, "has no events"),
    ],
)
def test_user_errors_are_clear_and_exit_non_zero(
    db: list[str], args: list[str], code: int, message: str
) -> None:
    result = run(*args, *db)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_version_conflict_exits_3_and_shows_expected_and_actual(db: list[str]) -> None:
    stream = f"cli-{uuid.uuid4().hex[:8]}"
    assert run("append", stream, "-t", "A", *db).returncode == 0
    result = run("append", stream, "-t", "B", "-e", "0", *db)
    assert result.returncode == 3
    assert "expected version 0" in result.stderr
    assert "at version 1" in result.stderr


def test_an_unreachable_database_exits_5_without_a_traceback() -> None:
    result = run("info", "--database-url", "postgresql://nobody@127.0.0.1:1/none", timeout=60)
    assert result.returncode == 5
    assert "unavailable" in result.stderr
    assert "Traceback" not in result.stderr


def test_tail_follow_prints_live_events_and_stops_on_sigterm(db: list[str]) -> None:
    category = f"live{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [*ILJI, "tail", "--follow", "--category", category, "--json", *db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        assert run("append", f"{category}-1", "-t", "Live", "-d", '{"x": 1}', *db).returncode == 0
        line = proc.stdout.readline()  # type: ignore[union-attr]
        event = json.loads(line)
        assert (event["stream"], event["type"], event["data"]) == (f"{category}-1", "Live", {"x": 1})
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    assert code == 0, proc.stderr.read()  # type: ignore[union-attr]


def test_quickstart_runs_on_its_own_embedded_postgres(tmp_path: Path) -> None:
    """What `make run` does on a fresh machine: no database URL, a new data directory."""
    env = {k: v for k, v in os.environ.items() if k != "ILJI_DATABASE_URL"}
    data_dir = tmp_path / "ilji-data"
    result = run("quickstart", "--data-dir", str(data_dir), env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "writer B was refused: expected 2, actual 3" in result.stdout
    assert "idempotent=True" in result.stdout
    assert (data_dir / "pg" / "PG_VERSION").exists()
    # Data survives a restart: a second process finds the streams of the first.
    info = run("info", "--json", "--data-dir", str(data_dir), env=env, timeout=120)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["events"] == 4


def test_info_shows_whether_group_commit_is_on(db: list[str]) -> None:
    on = run("info", "--json", *db)
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout)["group_commit"] == "on"
    env = {**os.environ, "ILJI_GROUP_COMMIT": "false"}
    off = run("info", *db, env=env)
    assert off.returncode == 0, off.stderr
    assert re.search(r"group commit\s*│\s*off", off.stdout), off.stdout


def test_migrate_reports_up_to_date(db: list[str]) -> None:
    result = run("migrate", *db)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_an_unusable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ILJI_DATABASE_URL"}
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run("info", "--data-dir", str(blocker), env=env)
    assert result.returncode == 2  # a setting to change: trying again would not help (issue 17)
    assert "not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_stops_the_embedded_server_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ILJI_DATABASE_URL"}
    data_dir = tmp_path / "data"
    # Only `ilji migrate` (and serve, worker, quickstart, demo) create the schema; tail reads.
    migrated = subprocess.run(
        [*ILJI, "migrate", "--data-dir", str(data_dir)], capture_output=True, text=True, env=env, timeout=180
    )
    assert migrated.returncode == 0, migrated.stderr
    proc = subprocess.Popen(
        [*ILJI, "tail", "--follow", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    pid_file = data_dir / "pg" / "postmaster.pid"
    for _ in range(120):
        if pid_file.exists():
            break
        time.sleep(0.25)
    assert pid_file.exists(), "the embedded server did not start"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()  # type: ignore[union-attr]
    for _ in range(40):  # pg_ctl stop waits for a clean shutdown, which removes the pid file
        if not pid_file.exists():
            break
        time.sleep(0.25)
    assert not pid_file.exists(), "the embedded server is still running"


@pytest.mark.parametrize("name", ["conference", "ships", "orders"])
def test_demos_explain_each_example_domain(db: list[str], name: str) -> None:
    result = run("demo", name, *db, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.count("\n") > 10  # a walkthrough, step by step
    assert "1." in result.stdout


def test_an_unknown_demo_is_refused() -> None:
    result = run("demo", "bank")
    assert result.returncode == 2
    assert "conference, ships, orders" in result.stderr


def test_serve_without_a_database_exits_5_and_says_why() -> None:
    result = run("serve", "--database-url", "postgresql://nobody@127.0.0.1:1/none", "--port", "0", timeout=60)
    assert result.returncode == 5, (result.stdout, result.stderr)
    # Checked before uvicorn starts: one line, not uvicorn's "startup failed" and a traceback.
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: the database is unavailable"), result.stderr
    assert "Traceback" not in result.stderr


def test_info_shows_a_forgotten_prepared_transaction_and_the_transaction_ids_left(
    db: list[str], database_url: str
) -> None:
    gid = f"ilji-cli-{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_current_xact_id()")
        conn.execute(f"PREPARE TRANSACTION '{gid}'")
    try:
        result = run("info", "--json", *db)
        assert result.returncode == 0, result.stderr
        info = json.loads(result.stdout)
        assert info["prepared_transactions"] == 1
        assert info["oldest_open_transaction_seconds"] > 0
        assert 0 < info["transaction_ids_left"] < 2**41
        assert any("ROLLBACK PREPARED" in w for w in info["warnings"])
        table = run("info", *db)
        assert "transaction ids left" in table.stdout
        assert "prepared (two-phase) transaction" in " ".join(table.stdout.split())
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"ROLLBACK PREPARED '{gid}'")
