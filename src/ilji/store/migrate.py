"""Schema migrations: versioned `.sql` files applied in order under an advisory lock.

Many replicas may start at once: each takes the same session-level advisory lock before
looking at the schema, so exactly one applies a migration and the others then see it done.

Migrations need the role that owns the schema. A process connected as a restricted app role
(docs/en/security.md) can still call `migrate()` at startup: when nothing is pending it runs
no DDL at all. After applying migrations, the app roles' privileges are granted again
(`ilji.grant_app_roles()`, migration 0006), so tables added by a migration are covered.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, LiteralString

from psycopg import errors as pg_errors

from ilji.domain.errors import SchemaError, SchemaTooNew
from ilji.domain.events import POSITION_SHIFT
from ilji.store.database import Connection, connect

log = logging.getLogger(__name__)

# An arbitrary constant that names Ilji's migration lock (pg_advisory_lock takes a bigint).
MIGRATION_LOCK_KEY = 0x11_1A_0001

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema migration file."""

    version: int
    name: str
    sql: bytes


def available_migrations() -> list[Migration]:
    """The migrations shipped with this version of Ilji, in order."""
    found = []
    for entry in resources.files("ilji.store.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_bytes()))
    return sorted(found, key=lambda m: m.version)


def latest_version() -> int:
    """The schema version this code needs."""
    return available_migrations()[-1].version


async def migrate(conninfo: str) -> list[Migration]:
    """Apply pending migrations; returns those this call applied (none if up to date).

    Raises `SchemaTooNew` when a newer Ilji migrated the database: this code must not write.
    While another process holds the migration lock this waits, and logs once that it does.
    """
    async with connect(conninfo) as conn:
        try:
            await _lock(conn)
            try:
                return await _apply_pending(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        except pg_errors.InsufficientPrivilege as exc:
            raise SchemaError(
                f"the schema needs migrations this database role may not apply ({exc.diag.message_primary}): "
                "run `ilji migrate` with the role that owns the schema (ILJI_MIGRATION_DATABASE_URL)"
            ) from exc


async def _lock(conn: Connection) -> None:
    # Try first, so that a wait (another replica migrating, or one stuck) is said, not silent.
    if await _value(conn, f"SELECT pg_try_advisory_lock({MIGRATION_LOCK_KEY})"):
        return
    holder = await _value(
        conn,
        "SELECT string_agg(pid::text, ', ') FROM pg_locks WHERE locktype = 'advisory' AND granted"
        f" AND (classid::bigint << 32 | objid::bigint) = {MIGRATION_LOCK_KEY}",
    )
    log.warning(
        "waiting for the migration lock: another process is migrating this database "
        f"(PostgreSQL backend {holder or 'unknown'}); Ctrl-C stops waiting",
        extra={"holder": holder},
    )
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    log.info("migration lock acquired")


async def check_schema(conninfo: str, *, writes: bool = True) -> int:
    """The database's schema version, checked against this code; takes no lock, changes nothing.

    Raises `SchemaError` (run `ilji migrate`) when migrations are pending, and `SchemaTooNew`
    when a newer Ilji migrated it, unless `writes` is false: reading stays allowed then.
    """
    async with connect(conninfo) as conn:
        found = await schema_version(conn)
        if writes and found:
            await check_transaction_horizon(conn)
    known = latest_version()
    if found < known:
        state = "has no Ilji schema" if found == 0 else f"has schema version {found}"
        raise SchemaError(f"the database {state}; this Ilji needs version {known}: run `ilji migrate`")
    if found > known and writes:
        raise SchemaTooNew(found, known)
    if found > known:
        log.warning("schema newer than this Ilji: reading only", extra={"found": found, "known": known})
    return found


async def _value(conn: Connection, query: LiteralString) -> Any:
    cur = await conn.execute(query)
    row = await cur.fetchone()
    return row[0] if row else None


async def _applied_versions(conn: Connection) -> set[int]:
    if not await _value(conn, "SELECT to_regclass('ilji.schema_migrations') IS NOT NULL"):
        return set()
    cur = await conn.execute("SELECT version FROM ilji.schema_migrations")
    return {row[0] for row in await cur.fetchall()}


async def _apply_pending(conn: Connection) -> list[Migration]:
    done = await _applied_versions(conn)
    known = latest_version()
    if done and max(done) > known:
        raise SchemaTooNew(max(done), known)
    pending = [m for m in available_migrations() if m.version not in done]
    if pending:
        # Only when there is work: an app role without CREATE privileges gets this far.
        await conn.execute("CREATE SCHEMA IF NOT EXISTS ilji")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ilji.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    applied = []
    for migration in pending:
        log.info("applying migration", extra={"version": migration.version, "migration": migration.name})
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO ilji.schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
        applied.append(migration)
    if applied:
        await regrant_app_roles(conn)
    await check_transaction_horizon(conn)
    # A process starting after a promotion records the new timeline (0010) before it serves.
    await conn.execute("SELECT ilji.note_timeline()")
    return applied


async def regrant_app_roles(conn: Connection) -> int:
    """Give every registered app role its privileges again; how many roles (0 before 0006)."""
    if not await _value(conn, "SELECT to_regprocedure('ilji.grant_app_roles()') IS NOT NULL"):
        return 0
    count = int(await _value(conn, "SELECT ilji.grant_app_roles()") or 0)
    if count:
        log.info("app role privileges granted", extra={"roles": count})
    return count


async def schema_version(conn: Connection) -> int:
    """The newest applied migration, 0 when the schema does not exist."""
    if not await _value(conn, "SELECT to_regclass('ilji.schema_migrations') IS NOT NULL"):
        return 0
    return int(await _value(conn, "SELECT coalesce(max(version), 0) FROM ilji.schema_migrations") or 0)


async def check_transaction_horizon(conn: Connection) -> None:
    """Refuse a database whose stored positions are ahead of its transaction counter.

    Positions come from transaction ids. A logical dump restored into a new cluster brings
    positions from the old cluster's ids while the new cluster counts from its own, so new
    events would sort before old ones. Physical backups and replicas keep the counter.
    """
    # ilji.xact_position() (0010) adds the timeline offset to the transaction id, as appends do.
    cur = await conn.execute(
        "SELECT coalesce(max(position), 0) >> %s, ilji.xact_position() >> %s FROM ilji.events",
        (POSITION_SHIFT, POSITION_SHIFT),
    )
    row = await cur.fetchone()
    if row and row[0] >= row[1]:
        raise SchemaError(
            f"stored events come from transaction id {row[0]} but this cluster is at {row[1]}: "
            "the database looks restored from a logical dump into a new cluster. Stop that "
            "cluster and advance its transaction counter past the stored ids (pg_resetwal -e, "
            "a higher epoch) before using it; see docs/en/architecture.md"
        )
