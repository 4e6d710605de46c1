"""Migrations and the database's own guarantees (append-only, positions, xid horizon)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from ilji import AppendOnlyViolation, NewEvent, PostgresEventStore, SchemaError
from ilji.embedded import EmbeddedPostgres, ensure_database
from ilji.store.database import translate
from ilji.store.migrate import available_migrations, latest_version, migrate, schema_version


async def test_many_replicas_migrating_at_once_apply_each_migration_once(pg_server: EmbeddedPostgres) -> None:
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_server.admin_url(), name)
    url = pg_server.admin_url(name)
    results = await asyncio.gather(*(migrate(url) for _ in range(6)))
    applied = [m.version for r in results for m in r]
    assert sorted(applied) == [m.version for m in available_migrations()]
    assert await migrate(url) == []  # idempotent
    async with await psycopg.AsyncConnection.connect(url) as conn:
        assert await schema_version(conn) == latest_version()


async def test_stored_events_cannot_be_changed_or_removed(database_url: str, stream: str) -> None:
    async with await PostgresEventStore.open(database_url) as store:
        await store.append(stream, [NewEvent("Fact", {"x": 1})])
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for statement in (
            "UPDATE ilji.events SET data = '{}' WHERE stream = %s",
            "DELETE FROM ilji.events WHERE stream = %s",
        ):
            with pytest.raises(psycopg.Error) as info:
                await conn.execute(statement, (stream,))
            assert isinstance(translate(info.value), AppendOnlyViolation)
        with pytest.raises(psycopg.Error) as info:
            await conn.execute("TRUNCATE ilji.events")
        assert isinstance(translate(info.value), AppendOnlyViolation)
        cur = await conn.execute("SELECT data FROM ilji.events WHERE stream = %s", (stream,))
        assert await cur.fetchall() == [({"x": 1},)]


async def test_positions_above_two_to_the_53_are_refused(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute(
                "INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)"
                " VALUES (9007199254740992, gen_random_uuid(), 'x-1', 1, 'T', '{}', '{}')"
            )


async def test_a_database_restored_into_a_younger_cluster_is_refused(pg_server: EmbeddedPostgres) -> None:
    """Simulate a logical restore: positions from transaction ids far ahead of this cluster."""
    name = f"restored_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_server.admin_url(), name)
    url = pg_server.admin_url(name)
    await migrate(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)"
            " VALUES ((1::bigint << 40) << 12, gen_random_uuid(), 'x-1', 1, 'T', '{}', '{}')"
        )
    with pytest.raises(SchemaError, match="logical dump"):
        await migrate(url)


async def test_a_missing_schema_is_reported_clearly(pg_server: EmbeddedPostgres) -> None:
    name = f"empty_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_server.admin_url(), name)
    async with await PostgresEventStore.open(pg_server.admin_url(name)) as store:
        with pytest.raises(SchemaError, match="ilji migrate"):
            await store.append("x-1", [NewEvent("T", {})])
        with pytest.raises(SchemaError):
            await store.read_all()


async def test_projection_admin_reports_database_errors_as_ilji_errors(pg_server: EmbeddedPostgres) -> None:
    """The admin functions talk to the pool directly; a driver error must not leak out raw."""
    from ilji.projections import admin

    name = f"noproj_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_server.admin_url(), name)  # no migrations: no projection tables
    async with await PostgresEventStore.open(pg_server.admin_url(name)) as store:
        with pytest.raises(SchemaError, match="ilji migrate"):
            await admin.status(store)
        with pytest.raises(SchemaError):
            await admin.pause(store, "anything")
