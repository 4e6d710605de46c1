"""Wiring: turn settings into a running store (embedded PostgreSQL, migrations, pool)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from ilji.embedded import EmbeddedPostgres, start_embedded
from ilji.settings import Settings
from ilji.store.migrate import check_schema, migrate
from ilji.store.postgres import PostgresEventStore

#: What opening a runtime does about the schema. "migrate": apply pending migrations (only
#: `ilji migrate`); "embedded": migrate the embedded default, whose only user is this machine,
#: and check any other database; "check": refuse a schema that is behind or newer than this
#: code (writers); "read": refuse one that is behind, read one that is newer.
Schema = Literal["migrate", "embedded", "check", "read"]


@dataclass
class Runtime:
    """What a running Ilji process holds: the store, its URL, and the embedded server if any."""

    store: PostgresEventStore
    url: str
    embedded: EmbeddedPostgres | None


async def database_or_embedded(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The configured database's URL and None; when none is configured, the embedded
    PostgreSQL is started (or joined) here and its URL and handle returned: stop it after."""
    if settings.database_url:
        return settings.database_url, None
    embedded = await asyncio.to_thread(start_embedded, settings.data_dir)
    return embedded.url, embedded


@asynccontextmanager
async def database_running(settings: Settings) -> AsyncIterator[tuple[str, EmbeddedPostgres | None]]:
    """`database_or_embedded` for the block: an embedded server started here stops after it."""
    url, embedded = await database_or_embedded(settings)
    try:
        yield url, embedded
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def migration_url(settings: Settings, url: str) -> str:
    """The URL migrations run with: the schema owner's when configured, else `url` itself.

    Behind a transaction pooler, `url` would not do: migrations hold a session advisory lock,
    and the pooler hands each statement's transaction to any server session. The direct LISTEN
    URL is used then, when there is one.
    """
    if settings.migration_database_url:
        return settings.migration_database_url
    if settings.database_pooled and settings.listen_database_url:
        return settings.listen_database_url
    return url


async def prepare_schema(settings: Settings, url: str, embedded: bool, schema: Schema) -> None:
    """Migrate or check the schema at `url`, as `schema` says (see `Schema`)."""
    if schema == "migrate" or (schema == "embedded" and embedded):
        # The owner's connection is used for migrations only and closed right after; the
        # store's pool connects with the (possibly restricted) application role.
        await migrate(migration_url(settings, url))
    else:
        await check_schema(url, writes=schema != "read")


@asynccontextmanager
async def open_runtime(settings: Settings, *, schema: Schema = "embedded") -> AsyncIterator[Runtime]:
    """Start what the settings ask for and yield it, its schema migrated or checked (`Schema`).

    Only `ilji migrate` changes a configured database's schema; the embedded default is
    migrated by whoever opens it first, since that is the point of it.
    """
    async with database_running(settings) as (url, embedded):
        await prepare_schema(settings, url, embedded is not None, schema)
        store = await PostgresEventStore.open(
            url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            max_event_size=settings.max_event_size,
            idle_in_transaction_timeout_ms=settings.idle_in_transaction_timeout_ms,
            # Bounds how long a caller waits for a connection while the database is away.
            connect_timeout=settings.db_timeout,
            group_commit=settings.group_commit,
            pooled=settings.database_pooled,
            listen_conninfo=settings.listen_database_url,
            read_conninfo=settings.read_database_url,
            at_least_timeout=settings.at_least_timeout,
        )
        try:
            yield Runtime(store=store, url=url, embedded=embedded)
        finally:
            await store.close()


@asynccontextmanager
async def connect(settings: Settings | None = None) -> AsyncIterator[PostgresEventStore]:
    """An open store for scripts and notebooks: `async with ilji.connect() as store`.

    The settings come from the `ILJI_*` environment variables unless given: `ILJI_DATABASE_URL`
    when set (its schema must be migrated: `ilji migrate`), otherwise the embedded PostgreSQL
    in `ILJI_DATA_DIR`, started (and migrated) here or shared with an `ilji serve` already
    running on that directory.
    """
    async with open_runtime(settings or Settings()) as runtime:
        yield runtime.store
