"""Wiring: turn settings into a running store (embedded PostgreSQL, migrations, pool)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ilji.embedded import EmbeddedPostgres, start_embedded
from ilji.settings import Settings
from ilji.store.migrate import migrate
from ilji.store.postgres import PostgresEventStore

log = logging.getLogger("ilji")


@dataclass
class Runtime:
    """What a running Ilji process holds: the store, its URL, and the embedded server if any."""

    store: PostgresEventStore
    url: str
    embedded: EmbeddedPostgres | None


async def database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The configured URL, or the embedded server's (started here) when none is configured."""
    if settings.database_url:
        return settings.database_url, None
    embedded = await asyncio.to_thread(start_embedded, settings.data_dir)
    return embedded.url, embedded


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


@asynccontextmanager
async def open_runtime(settings: Settings, *, run_migrations: bool = True) -> AsyncIterator[Runtime]:
    """Start what the settings ask for and yield it (migrated); stop everything on exit."""
    url, embedded = await database_url(settings)
    try:
        if run_migrations:
            # The owner's connection is used for migrations only and closed right after;
            # the pool below connects with the (possibly restricted) application role.
            applied = await migrate(migration_url(settings, url))
            for migration in applied:
                log.info("migration applied", extra={"version": migration.version})
        store = await PostgresEventStore.open(
            url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            max_event_size=settings.max_event_size,
            idle_in_transaction_timeout_ms=settings.idle_in_transaction_timeout_ms,
            # Bounds how long a caller waits for a connection while the database is away.
            connect_timeout=settings.db_timeout,
            pooled=settings.database_pooled,
            listen_conninfo=settings.listen_database_url,
            read_conninfo=settings.read_database_url,
            at_least_timeout=settings.at_least_timeout,
        )
        try:
            yield Runtime(store=store, url=url, embedded=embedded)
        finally:
            await store.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


@asynccontextmanager
async def connect(settings: Settings | None = None) -> AsyncIterator[PostgresEventStore]:
    """An open, migrated store for scripts and notebooks: `async with ilji.connect() as store`.

    The settings come from the `ILJI_*` environment variables unless given: `ILJI_DATABASE_URL`
    when set, otherwise the embedded PostgreSQL in `ILJI_DATA_DIR`, started here or shared
    with an `ilji serve` already running on that directory.
    """
    async with open_runtime(settings or Settings()) as runtime:
        yield runtime.store
