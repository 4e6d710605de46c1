"""Issue 17, the first hour with Ilji: each trap a newcomer met, as the newcomer meets it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ilji.embedded import EmbeddedPostgres
from ilji.store.migrate import MIGRATION_LOCK_KEY, latest_version
from tests.e2e.server_helpers import append, running_server, stream_name

ILJI = [sys.executable, "-m", "ilji.cli"]
ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ILJI_")}
    return subprocess.run(
        [*ILJI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, **(env or {})},
        check=False,
    )


def empty_database(pg_server: EmbeddedPostgres) -> str:
    """A database without Ilji's schema (the fixtures' ones are migrated)."""
    name = f"empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return pg_server.admin_url(name)


def has_schema(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass('ilji.schema_migrations') IS NOT NULL").fetchone()
    return bool(row and row[0])


# -- 2 and 3: only `ilji migrate` migrates; a wait for the lock is said; a signal is not success ----


def test_read_commands_check_the_schema_and_never_migrate(pg_server: EmbeddedPostgres) -> None:
    url = empty_database(pg_server)
    for args in (["read", "order-1"], ["tail"], ["info"], ["append", "order-1", "-t", "T"]):
        result = run(*args, "--database-url", url)
        assert result.returncode == 5, (args, result.stderr)
        assert "run `ilji migrate`" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not has_schema(url)  # nothing was migrated behind the user's back
    migrated = run("migrate", "--database-url", url)
    assert migrated.returncode == 0, migrated.stderr
    assert "applied migration 0001" in migrated.stdout
    assert run("read", "order-1", "--database-url", url).returncode == 4  # no such stream, schema fine


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_migrate_waiting_for_the_lock_says_so_and_a_signal_exits_non_zero(
    pg_server: EmbeddedPostgres, sig: signal.Signals
) -> None:
    url = empty_database(pg_server)
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        proc = subprocess.Popen(
            [*ILJI, "migrate", "--database-url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not _waiting_for_lock(holder) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the line is written before the blocking call
        said = "".join(lines)
        proc.send_signal(sig)
        code = _exit_code(proc, 20)  # at once: the lock wait is cancelled, not sat out
        reader.join(timeout=5)
    rest = "".join(lines)
    assert "waiting for the migration lock" in said
    assert code == 128 + sig, rest
    assert f"interrupted by {sig.name}" in rest
    assert "Run `ilji migrate` again" in rest
    assert not has_schema(url)


def _exit_code(proc: subprocess.Popen[str], timeout: float) -> int | None:
    """The exit code, or None (and the process killed) when it did not stop in time."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def _waiting_for_lock(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
    return bool(row and row[0])


def test_serve_says_it_waits_for_the_migration_lock_and_ctrl_c_stops_it_at_once(tmp_path: Path) -> None:
    from ilji.embedded import start_embedded

    data = tmp_path / "data"
    embedded = start_embedded(data)  # serve shares this server, as a second process would
    try:
        with psycopg.connect(embedded.url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            proc = subprocess.Popen(
                [*ILJI, "serve", "--port", "0", "--data-dir", str(data)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
            reader.start()
            deadline = time.monotonic() + 60
            while not _waiting_for_lock(holder) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            said = "".join(lines)
            proc.send_signal(signal.SIGINT)
            code = _exit_code(proc, 20)
            reader.join(timeout=5)
    finally:
        embedded.stop()
    assert "waiting for the migration lock" in said, said
    assert code == 130, "".join(lines)
    assert "interrupted by SIGINT: stopped before serving" in "".join(lines)


# -- 13: a schema newer than the code ------------------------------------------------------------


def test_a_newer_schema_is_read_but_never_written(database_url: str) -> None:
    newer = latest_version() + 1
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ilji.schema_migrations (version, name) VALUES (%s, 'from_the_future')", (newer,)
        )
    try:
        info = run("info", "--json", "--database-url", database_url)
        assert info.returncode == 0, info.stderr
        data = json.loads(info.stdout)
        assert (data["schema_version"], data["code_schema_version"]) == (newer, latest_version())
        for args in (["append", "s-1", "-t", "T"], ["migrate"], ["streams", "delete", "s-1"]):
            refused = run(*args, "--database-url", database_url)
            assert refused.returncode == 2, (args, refused.stderr)
            assert f"schema is at version {newer}, newer than this Ilji" in refused.stderr
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM ilji.schema_migrations WHERE version = %s", (newer,))


# -- 4 and 5: one line, and an exit code a script can trust -----------------------------------------


@pytest.fixture
def taken_port() -> tuple[int, subprocess.Popen[bytes]]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listener = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen();time.sleep(60)",
        ]
    )
    time.sleep(0.5)
    return port, listener


def test_serve_on_a_taken_port_is_one_line_naming_port_before_starting_anything(
    tmp_path: Path, taken_port: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, listener = taken_port
    try:
        result = run("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    finally:
        listener.kill()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --port (ILJI_PORT): cannot listen on 127.0.0.1:{port} (Address already in use); "
        "another server may be using it: choose another port with --port"
    ]
    assert not (tmp_path / "data").exists()  # PostgreSQL was not started first


def test_serve_with_a_wrong_role_is_one_line_and_exit_2(database_url: str) -> None:
    wrong = re.sub(r"postgresql://[^:@/]*", "postgresql://nobody_here", database_url)
    result = run("serve", "--port", "0", "--database-url", wrong)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "ILJI_DATABASE_URL" in lines[0] and "nobody_here" in lines[0]
    assert "Traceback" not in result.stderr


BAD_SETUPS = [
    ({"ILJI_PORT": "70000"}, ["info"], 2, "ILJI_PORT: input should be less than or equal to 65535"),
    ({"ILJI_LOG_LEVEL": "verbose"}, ["info"], 2, "ILJI_LOG_LEVEL: input should be 'DEBUG'"),
    ({"ILJI_EXAMPLES": "nope"}, ["info"], 2, "ILJI_EXAMPLES: unknown example(s) nope"),
    ({"ILJI_DATABASE_URL": "postgres//oops"}, ["info"], 2, "ILJI_DATABASE_URL: is not a PostgreSQL URL"),
    ({"ILJI_DATABASE_URL": "mysql://h/db"}, ["info"], 2, "ILJI_DATABASE_URL: must be a postgresql:// URL"),
    ({}, ["info", "--database-url", "postgresql://127.0.0.1:1/x"], 5, "the database is unavailable"),
    ({}, ["serve", "--port", "99999"], 2, "--port: input should be less than or equal to 65535"),
    ({}, ["worker", "-p", "x:y", "--lease-ttl", "0"], 2, "--lease-ttl: input should be greater than"),
]


@pytest.mark.parametrize(("env", "args", "code", "line"), BAD_SETUPS)
def test_each_bad_setting_is_one_line_naming_it(
    env: dict[str, str], args: list[str], code: int, line: str
) -> None:
    result = run(*args, env=env)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {line}"), lines
    assert "secret" not in result.stderr


def test_examples_variable_is_a_plain_list() -> None:
    from ilji.settings import load_settings

    os.environ["ILJI_EXAMPLES"] = "conference, ships"
    try:
        assert load_settings().examples == ("conference", "ships")
    finally:
        del os.environ["ILJI_EXAMPLES"]


def test_an_unwritable_data_dir_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run("info", "--data-dir", str(blocker / "data"))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--data-dir" in result.stderr


# -- 6: --version, -h, whole lines in pipes, flags with their variables ------------------------------


def test_version_and_short_help() -> None:
    import ilji

    version = run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"ilji {ilji.__version__}")
    for args in (["-h"], ["serve", "-h"], ["projections", "status", "-h"]):
        helped = run(*args)
        assert helped.returncode == 0 and "Usage:" in helped.stdout, args


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_every_server_and_worker_flag_names_its_variable(command: str) -> None:
    from ilji.settings import Settings

    text = run(command, "--help", env={"COLUMNS": "400"}).stdout
    flags = re.findall(r"^\W*(--[a-z-]+)\s.*$", text, re.MULTILINE)
    assert {"--log-level", "--log-format", "--database-url"} <= set(flags)
    for line in text.splitlines():
        match = re.match(r"^\W*(--[a-z-]+)\s", line)
        if match and match[1] not in ("--help", "--projection"):
            env = re.search(r"\(env (ILJI_[A-Z_]+)\)", line)
            assert env, line
            assert env[1].removeprefix("ILJI_").lower() in Settings.model_fields


def test_tables_are_not_cut_at_80_columns_in_a_pipe(database_url: str) -> None:
    stream = f"wide-{uuid.uuid4().hex[:8]}"
    payload = {"note": "x" * 300}
    assert (
        run(
            "append", stream, "-t", "Wide", "-d", json.dumps(payload), "--database-url", database_url
        ).returncode
        == 0
    )
    printed = run("read", stream, "--database-url", database_url)
    assert printed.returncode == 0
    assert json.dumps(payload, separators=(",", ":")) in printed.stdout


# -- 11: the CLI pages like the HTTP contract ---------------------------------------------------------


def test_cli_reads_more_than_a_page_by_paging(database_url: str) -> None:
    stream = f"long{uuid.uuid4().hex[:8]}-1"

    async def fill() -> None:
        from ilji import NewEvent, PostgresEventStore

        store = await PostgresEventStore.open(database_url, max_size=2)
        try:
            for _ in range(3):
                await store.append(stream, [NewEvent("Tick", {}) for _ in range(500)])
        finally:
            await store.close()

    import asyncio

    asyncio.run(fill())
    whole = json.loads(run("read", stream, "--json", "--database-url", database_url).stdout)["events"]
    assert [e["version"] for e in whole] == list(range(1, 1501))
    some = json.loads(run("read", stream, "--limit", "1200", "--json", "--database-url", database_url).stdout)
    assert [e["version"] for e in some["events"]] == list(range(1, 1201))
    tail = run(
        "tail", "-c", stream.rsplit("-", 1)[0], "--limit", "1400", "--json", "--database-url", database_url
    )
    assert len(json.loads(tail.stdout)["events"]) == 1400


# -- 10 and 11: logs, metrics and HTTP of a running server ---------------------------------------------


def test_server_logs_metrics_location_and_home(database_url: str) -> None:
    with running_server(database_url, env={"ILJI_LOG_FORMAT": "json"}) as server, server.client() as client:
        stream = stream_name()
        created = append(client, stream, "A")
        assert created.status_code == 201
        assert created.headers["location"] == f"/v1/streams/{stream}?from_version=1"
        assert client.get(created.headers["location"]).json()["events"][0]["type"] == "A"
        plain = client.post(
            f"/v1/streams/{stream}",
            content=json.dumps({"events": [{"type": "B", "data": {}}]}),
            headers={"content-type": "text/plain"},
        )
        assert plain.status_code == 201  # the contract reads JSON whatever the label says

        given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert given.headers["x-request-id"] == "abc-123"
        made = client.get("/readyz").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)

        home = client.get("/")
        assert home.status_code == 200
        assert {"/console", "/docs", "/v1/all"} <= set(home.json()["links"])
        assert 'href="/console"' in client.get("/", headers={"accept": "text/html"}).text

        metrics = client.get("/metrics").text
    assert "_created" not in metrics
    assert re.search(r'^ilji_build_info\{python="[^"]+",version="[^"]+"\} 1\.0$', metrics, re.MULTILINE)
    assert "process_cpu_seconds_total" in metrics
    assert re.search(r"^# TYPE ilji_store_notifications_sent(_total)? counter$", metrics, re.MULTILINE)
    assert "ilji_store_notifications_sent_total " in metrics

    entries = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert not [e for e in entries if e["logger"] == "uvicorn.error" and e["level"] == "info"]
    requests = [e for e in entries if e["message"] == "request"]
    assert {e["route"] for e in requests} >= {"/v1/streams/{stream}", "/"}
    assert not [e for e in requests if e["route"] in ("/readyz", "/healthz", "/metrics")]  # DEBUG only
    assert all(e["request_id"] for e in requests)
    migrations = [e for e in entries if "migration" in e["message"]]
    assert len(migrations) == len({e.get("version") for e in migrations})  # each at most once


async def test_each_migration_is_logged_once(
    pg_server: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    from ilji.bootstrap import open_runtime
    from ilji.settings import load_settings

    url = empty_database(pg_server)
    with caplog.at_level("INFO"):
        async with open_runtime(load_settings(database_url=url), schema="migrate"):
            pass
    logged = [
        r.__dict__["version"] for r in caplog.records if "version" in r.__dict__ and "migration" in r.msg
    ]
    assert logged == list(range(1, latest_version() + 1))


# -- 12: the README's sample is its own ---------------------------------------------------------------


def test_readme_sample_does_not_collide_with_the_demos() -> None:
    readme = (ROOT / "README.md").read_text()
    demo_categories = {"conference", "ship", "order", "customer", "credit", "payment"}
    named = set(re.findall(r"\b([a-z]+)-\d+\b", readme))
    assert named, "the README names its sample streams"
    assert not named & demo_categories
    assert "OrderPlaced" not in readme


def test_quickstart_names_the_command_the_user_ran(tmp_path: Path) -> None:
    result = run("quickstart", "--data-dir", str(tmp_path / "data"), timeout=120)
    assert result.returncode == 0, result.stderr
    assert ".venv/bin/ilji" not in result.stdout
    assert (
        f"{Path(sys.executable).name} -m ilji.cli read cart-" in result.stdout
        or "ilji read cart-" in result.stdout
    )


# -- 7: `make run` installs what running needs, and says so -------------------------------------------


def test_make_run_installs_only_what_running_needs_and_make_test_the_rest(tmp_path: Path) -> None:
    venv = f"VENV={tmp_path / 'venv'}"  # a venv that does not exist: make plans every step
    run_plan = subprocess.run(
        ["make", "-n", "run", venv], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    installs = [line for line in run_plan.splitlines() if "pip install" in line]
    # The extras running Ilji here needs (`run`: server, command, embedded PostgreSQL), not dev.
    assert installs and all("-e '.[run]'" in line and "dev" not in line for line in installs), installs
    assert "--quiet" not in run_plan
    assert "echo" in run_plan  # each step is announced
    test_plan = subprocess.run(
        ["make", "-n", "lint", venv], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "-e '.[dev,bench,docs]'" in test_plan  # dev includes every extra (ilji[all])


# -- 8: the embedded PostgreSQL after a kill -9, and as root ----------------------------------------


def test_a_killed_process_does_not_keep_the_embedded_server_running(tmp_path: Path) -> None:
    from ilji.embedded import start_embedded

    data = tmp_path / "data"
    killed = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from ilji.embedded import start_embedded\n"
        "start_embedded(Path(sys.argv[1]))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", killed, str(data)], timeout=120, check=False)
    pgdata = data / "pg"
    assert json.loads((pgdata / ".handle_pids.json").read_text())  # the dead process's handle stayed
    server = start_embedded(data)
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    server.stop()  # the last live handle: the server stops
    deadline = time.monotonic() + 60
    while _alive(postmaster) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(postmaster)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").exists() or " Z " not in Path(f"/proc/{pid}/stat").read_text()


def test_running_as_root_says_it_creates_a_system_user(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pwd

    from ilji import embedded

    def no_such_user(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(pwd, "getpwnam", no_such_user)
    with caplog.at_level("WARNING", logger="ilji.embedded"):
        embedded._warn_if_root()
    assert "'embedded_postgres' (a login user) is being created" in caplog.text


# -- 9: a license in the repository and the wheel ------------------------------------------------------


def test_the_wheel_carries_the_license_and_classifiers(tmp_path: Path) -> None:
    import zipfile

    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("ilji-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Intended Audience :: Developers" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11" in metadata
