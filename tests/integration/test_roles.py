"""Least-privilege roles on a real PostgreSQL: an owner migrates, an app role only appends and reads.

The session's embedded server lets tests connect as any role without a password (local trust),
so each module run creates its own owner and app roles and a database the owner owns.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ilji import NewEvent
from ilji.bootstrap import open_runtime
from ilji.domain.errors import SchemaError, ValidationError
from ilji.embedded import EmbeddedPostgres
from ilji.projections import Worker, wait_for_position
from ilji.settings import load_settings
from ilji.store.migrate import migrate, regrant_app_roles
from ilji.store.roles import grant_app_role
from ilji.store.snapshots import PostgresSnapshotStore, Snapshot
from ilji.store.subject_keys import PostgresKeyStore
from tests.e2e.worker_fixtures import ledger, worker_store


@dataclass(frozen=True)
class Roles:
    """A database owned by `owner`, migrated by it, with `app` registered as its app role."""

    owner: str
    app: str
    owner_url: str
    app_url: str
    superuser_url: str


def _as(url: str, user: str, dbname: str) -> str:
    return make_conninfo(url, user=user, dbname=dbname)


def _create(server: EmbeddedPostgres, *statements: sql.Composed) -> None:
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="module")
def roles(pg_server: EmbeddedPostgres) -> Roles:
    tag = uuid.uuid4().hex[:8]
    owner, app, db = f"ilji_owner_{tag}", f"ilji_app_{tag}", f"roles_{tag}"
    _create(
        pg_server,
        sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)),
        sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(app)),
        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(owner)),
    )
    admin = pg_server.admin_url()
    found = Roles(owner, app, _as(admin, owner, db), _as(admin, app, db), _as(admin, "postgres", db))
    # The documented command, as a user runs it: migrate as the owner, then grant.
    result = subprocess.run(
        [sys.executable, "-m", "ilji.cli", "db", "grant", "--role", app, "--database-url", found.owner_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["│", "events", "│", "SELECT,", "INSERT", "│"] in rows, result.stdout
    return found


def _privileges(url: str, role: str, table: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT privilege_type FROM information_schema.table_privileges"
            " WHERE grantee = %s AND table_schema = 'ilji' AND table_name = %s",
            (role, table),
        ).fetchall()
    return {row[0] for row in rows}


def test_the_owner_owns_the_schema_and_the_app_role_gets_only_append_and_read(roles: Roles) -> None:
    with psycopg.connect(roles.superuser_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'ilji.events'::regclass"
        ).fetchone()
    assert row == (roles.owner,)
    assert _privileges(roles.owner_url, roles.app, "events") == {"SELECT", "INSERT"}
    assert _privileges(roles.owner_url, roles.app, "schema_migrations") == {"SELECT"}
    assert _privileges(roles.owner_url, roles.app, "app_roles") == set()
    assert _privileges(roles.owner_url, roles.app, "subject_keys") == {"SELECT", "INSERT", "UPDATE"}


async def test_the_app_role_runs_the_store_snapshots_subject_keys_and_a_projection(roles: Roles) -> None:
    settings = load_settings(database_url=roles.app_url)
    # Startup migration as the app role: nothing is pending, so it runs no DDL and succeeds.
    async with open_runtime(settings) as runtime:
        store = runtime.store
        stream = f"acct-{uuid.uuid4().hex[:12]}"
        await store.append(stream, [NewEvent("Opened", {"n": 1}), NewEvent("Deposited", {"n": 2})])
        result = await store.append(stream, [NewEvent("Deposited", {"n": 3})], expected_version=2)
        assert [e.version for e in await store.read_stream(stream)] == [1, 2, 3]

        snapshots = PostgresSnapshotStore(store.database)
        events = await store.read_stream(stream)
        snap = Snapshot(stream, "Account", 1, 3, events[-1].id, {"balance": 5})
        await snapshots.save(snap)
        await snapshots.save(snap)  # the upsert path (ON CONFLICT DO UPDATE) as well
        assert (await snapshots.latest(stream, "Account", 1, 3)) == snap
        assert await snapshots.delete(stream) == 1

        keys = PostgresKeyStore(store.database)
        subject = f"customer-{uuid.uuid4().hex[:8]}"
        key = await keys.key_for_writing(subject)
        assert (await keys.keys_for_reading([subject]))[subject].key_id == key.key_id
        forgotten = await keys.forget(subject, by="test", reason="erasure request")
        assert forgotten.subject == subject and await keys.keys_for_reading([subject]) == {}

        # A projection worker as the app role: leases, checkpoints, heartbeats, and its
        # read-model tables created in the schema named like the role ("$user" on the path).
        name = f"roles_{uuid.uuid4().hex[:6]}"
        async with worker_store(roles.app_url, [ledger(name)], lease_ttl=2) as worker_db:
            worker = Worker(worker_db, [ledger(name)], worker_id="w1", lease_ttl=2, poll_interval=0.1)
            task = asyncio.create_task(worker.run())
            try:
                await wait_for_position(store, name, result.last_position, timeout=30)
            finally:
                await worker.stop()
                await asyncio.wait_for(task, 15)
    with psycopg.connect(roles.app_url, autocommit=True) as conn:
        where = conn.execute(
            "SELECT schemaname, tableowner FROM pg_tables WHERE tablename = %s", (f"{name}_applied_v1",)
        ).fetchall()
        assert where == [(roles.app, roles.app)]
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE stream = %s").format(sql.Identifier(f"{name}_applied_v1")),
            (stream,),
        ).fetchone()
        assert count == (3,)


FORBIDDEN = [
    "UPDATE ilji.events SET type = 'Changed'",
    "DELETE FROM ilji.events",
    "TRUNCATE ilji.events",
    # A simple view is updatable, with its owner's privileges on the table: SELECT only.
    "UPDATE ilji.visible_events SET type = 'Changed'",
    "DELETE FROM ilji.visible_events",
    "DROP TABLE ilji.events",
    "ALTER TABLE ilji.events DROP CONSTRAINT events_stream_version_key",
    "ALTER TABLE ilji.events DISABLE TRIGGER events_append_only_rows",
    "CREATE TABLE ilji.intruder (x int)",
    "DELETE FROM ilji.schema_migrations",
    "DELETE FROM ilji.subject_keys",
    "TRUNCATE ilji.snapshots",
    "INSERT INTO ilji.app_roles (role) VALUES ('someone')",
    "SELECT ilji.grant_app_roles()",
    "DROP SCHEMA {app} CASCADE",
]


@pytest.mark.parametrize("statement", FORBIDDEN)
def test_the_app_role_cannot_change_events_or_the_schema(roles: Roles, statement: str) -> None:
    query = sql.SQL(statement.replace("{app}", "{}")).format(sql.Identifier(roles.app))
    with (
        psycopg.connect(roles.app_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege) as caught,
    ):
        conn.execute(query)
    # Refused by privileges, not by the append-only trigger (which would say IJ001).
    assert caught.value.sqlstate == "42501"


async def test_privileges_are_granted_again_after_a_migration(roles: Roles) -> None:
    async with await psycopg.AsyncConnection.connect(roles.owner_url, autocommit=True) as conn:
        # What a later migration does: a new table. Until the re-grant the app role may
        # only read it (default privileges); a privilege granted by hand disappears.
        await conn.execute("CREATE TABLE IF NOT EXISTS ilji.later_table (id int PRIMARY KEY)")
        await conn.execute(sql.SQL("GRANT UPDATE ON ilji.events TO {}").format(sql.Identifier(roles.app)))
        assert _privileges(roles.owner_url, roles.app, "later_table") == {"SELECT"}
        assert "UPDATE" in _privileges(roles.owner_url, roles.app, "events")
        # What `migrate()` runs after applying migrations.
        assert await regrant_app_roles(conn) == 1
    assert _privileges(roles.owner_url, roles.app, "later_table") == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert _privileges(roles.owner_url, roles.app, "events") == {"SELECT", "INSERT"}


async def test_a_pending_migration_as_the_app_role_names_the_owner_setting(
    pg_server: EmbeddedPostgres, roles: Roles
) -> None:
    empty = f"empty_{uuid.uuid4().hex[:8]}"
    _create(pg_server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(empty)))
    with pytest.raises(SchemaError, match="ILJI_MIGRATION_DATABASE_URL"):
        await migrate(_as(pg_server.admin_url(), roles.app, empty))


@pytest.mark.parametrize(
    ("who", "message"),
    [("owner", "owns the Ilji schema"), ("postgres", "superuser"), ("nobody", "does not exist")],
)
async def test_grant_refuses_roles_that_privileges_cannot_restrict(
    roles: Roles, who: str, message: str
) -> None:
    role = {"owner": roles.owner, "postgres": "postgres", "nobody": f"nobody_{uuid.uuid4().hex[:6]}"}[who]
    with pytest.raises(ValidationError, match=message):
        await grant_app_role(roles.owner_url, role, read_models=None)


async def test_only_the_owner_may_grant(roles: Roles) -> None:
    with pytest.raises(ValidationError, match="only the role that owns"):
        await grant_app_role(roles.app_url, roles.app, read_models=None)
