"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per module.

Databases are cloned from a migrated template, so each module starts from an empty store
without paying for migrations, and nothing needs cleaning afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ilji.embedded import EmbeddedPostgres, ensure_database, start_embedded
from ilji.store.migrate import migrate
from ilji.store.postgres import PostgresEventStore
from tests.servers import PgBouncer, pgbouncer_binary

TEMPLATE = "ilji_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """The embedded PostgreSQL server for this test session (its own temporary data dir)."""
    base = Path(tempfile.mkdtemp(prefix="ilji-tests-"))
    os.chmod(base, 0o755)
    server = start_embedded(base)
    if _enable_prepared_transactions(server.admin_url()):
        server.stop()  # the setting needs a restart
        server = start_embedded(base)
    ensure_database(server.admin_url(), TEMPLATE)
    asyncio.run(migrate(server.admin_url(TEMPLATE)))
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def _enable_prepared_transactions(admin_url: str) -> bool:
    """Allow two-phase transactions (off by default), for the tests of what a forgotten one holds.

    Returns whether the server must restart for the setting to take effect.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SHOW max_prepared_transactions").fetchone()
        if row is not None and int(row[0]) > 0:
            return False
        conn.execute("ALTER SYSTEM SET max_prepared_transactions = 8")
    return True


def new_database(server: EmbeddedPostgres) -> str:
    """Create an empty, migrated database and return its URL."""
    name = f"t_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE))
        )
    return server.admin_url(name)


@pytest.fixture(scope="module")
def database_url(pg_server: EmbeddedPostgres) -> str:
    """A fresh database for the test module."""
    return new_database(pg_server)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    """A PostgreSQL event store on the module's database."""
    s = await PostgresEventStore.open(database_url, max_size=10, poll_interval=0.5)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def stream() -> str:
    """A random stream name, so tests sharing a database never collide."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def pgbouncer(pg_server: EmbeddedPostgres) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling in front of the session's PostgreSQL.

    Skipped where pgbouncer is not installed, except in CI (`CI` set), where `make test`
    installs it (scripts/install-system-deps): there a missing pgbouncer fails.
    """
    binary = pgbouncer_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(
                "pgbouncer is not installed: in CI, `make test` installs it (scripts/install-system-deps)"
            )
        pytest.skip("pgbouncer is not installed; run scripts/install-system-deps")
    info = psycopg.conninfo.conninfo_to_dict(pg_server.admin_url())
    workdir = Path(tempfile.mkdtemp(prefix="ilji-pgbouncer-"))
    port = int(str(info.get("port") or 5432))  # the embedded server listens on a socket only
    bouncer = PgBouncer(binary, str(info.get("host") or "127.0.0.1"), port, workdir)
    yield bouncer
    bouncer.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def through(bouncer: PgBouncer, url: str) -> str:
    """The same database as `url`, reached through PgBouncer."""
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    return bouncer.url(str(name))
