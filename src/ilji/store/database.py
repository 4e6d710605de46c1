"""The one seam between Ilji and PostgreSQL.

Every connection Ilji makes goes through this module: pooled ones through a `Database`
(`connection()`, `transaction()`), dedicated ones (LISTEN, migrations, role checks) through
`connect()`. Whatever the driver, the pool or the socket raises, inside or around the block, is
translated here, once, into the Ilji error a caller should see (`translate`); errors Ilji raises
itself pass through unchanged. No other module touches a pool or calls `translate`.

Code that must look at a driver error before it is translated (a unique violation that means
"this event id was used", a deadlock worth retrying) catches it inside the block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import orjson
import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from ilji.domain.errors import (
    AppendOnlyViolation,
    ConfigurationError,
    IljiError,
    PositionLimitReached,
    SchemaError,
    StoreUnavailable,
    ValidationError,
)
from ilji.store import sql

log = logging.getLogger(__name__)

#: A connection to PostgreSQL as psycopg gives it (rows as tuples).
Connection = psycopg.AsyncConnection[Any]

#: What `translate` turns into Ilji errors: the driver's, the pool's and the socket's.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error, psycopg_pool.PoolTimeout, OSError)

_NOTE_TIMELINE = sql.load("note_timeline")

# SQLSTATE class 08 (connection exception), 57P0x (shutdown, crash), 53 (insufficient resources)
_UNAVAILABLE_PREFIXES = ("08", "57P", "53")
# Class 28 (a wrong password, an unknown role) and 3D000 (no such database): the URL is wrong,
# and trying again will not make it right. libpq reports some of these only as text.
_CONFIGURATION_STATES = ("28", "3D000")
_CONFIGURATION_TEXTS = (
    "password authentication failed",
    "does not exist",
    "no password supplied",
    "invalid integer value",
    "invalid connection option",
    "invalid sslmode value",
)

# The CHECK on ilji.events.position (0001_event_store.sql): positions stay below 2**53.
_POSITION_CHECK = "events_position_check"


def translate(exc: BaseException) -> IljiError:
    """Map a psycopg (or pool) exception to the Ilji error a caller should see.

    Only the primary message of a database error is kept, never its DETAIL: PostgreSQL puts
    the offending row there ("Failing row contains (...)", "Key (email)=(...)"), so event
    data would reach clients and logs.
    """
    if isinstance(exc, IljiError):
        return exc
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StoreUnavailable(f"no database connection available: {exc}")
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        if state == "IJ001":
            return AppendOnlyViolation(_primary(exc))
        if state == "IJ002":
            return ValidationError("events", _primary(exc))
        if isinstance(exc, pg_errors.CheckViolation) and exc.diag.constraint_name == _POSITION_CHECK:
            return PositionLimitReached(
                "the event store is full: PostgreSQL's transaction ids have passed 2^41, so new "
                "positions would pass 2^53; nothing was appended (see 'Transaction ids' in "
                "docs/en/operations.md)"
            )
        if isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedFunction) or state == "3F000":
            return SchemaError(
                f"the Ilji schema is missing or out of date ({_primary(exc)}); run `ilji migrate`"
            )
        if state.startswith(_CONFIGURATION_STATES) or (
            isinstance(exc, psycopg.OperationalError)
            and not state
            and any(text in str(exc) for text in _CONFIGURATION_TEXTS)
        ):
            return ConfigurationError(
                "ILJI_DATABASE_URL/--database-url", f"the database refused it: {_primary(exc)}"
            )
        if isinstance(exc, pg_errors.QueryCanceled):
            return StoreUnavailable(f"the database cancelled the statement: {_primary(exc)}")
        if isinstance(exc, psycopg.OperationalError) or state.startswith(_UNAVAILABLE_PREFIXES):
            return StoreUnavailable(f"the database is unavailable: {_primary(exc)}")
        # psycopg.DataError is all of SQLSTATE class 22; pg_errors.DataException is only 22000.
        if isinstance(exc, psycopg.DataError):
            return ValidationError("data", _primary(exc))
        return IljiError(f"unexpected database error: {_primary(exc)}")
    if isinstance(exc, OSError):
        return StoreUnavailable(f"the database is unavailable: {exc}")
    return IljiError(f"unexpected database error: {exc}")


def _primary(exc: psycopg.Error) -> str:
    diag = exc.diag.message_primary if exc.diag else None
    return diag or str(exc).strip()


class _StackPool(AsyncConnectionPool[Connection]):
    """A pool that lends the connection given back last (a stack; psycopg_pool's is a queue),
    and checks its idle connections as soon as one is found broken.

    A queue round-robins over every idle connection, so even a lone caller wakes a different
    server process each time, with cold caches; with 64 connections open, the two group-commit
    statements in flight did too. On a two-core machine the stack made 16 and 64 concurrent
    appends about a quarter faster, and a lone one about a tenth
    (docs/en/performance.md, "Group commit"). The rest idle out (`max_idle`).

    The price of a stack: connections broken while idle (a database restart) sit at its
    bottom, and a queue would have met them all at once, right after the outage. So a
    connection given back broken starts `check()` of the idle ones (one at a time; a second
    broken one while it runs adds nothing), and the dead are replaced before a burst finds
    them. `tests/integration/test_database_seam.py` checks the order and the sweep, so a
    psycopg_pool release that renames the method overridden here fails there.
    """

    _sweep: asyncio.Task[None] | None = None
    #: Sweeps started (a metric for the background check; see `Database.stats`).
    sweeps = 0

    async def _get_ready_connection(self, timeout: float | None) -> Connection | None:  # noqa: ASYNC109
        # The base class takes the oldest from the left; bring the newest there first.
        self._pool.rotate(1)
        return await super()._get_ready_connection(timeout)

    def found_broken(self) -> None:
        """A connection came back broken: check the idle ones, unless a check is under way."""
        if self._closed or (self._sweep is not None and not self._sweep.done()):
            return
        self.sweeps += 1
        log.warning("a pooled connection was broken: checking the idle ones", extra={"pool": self.name})
        self._sweep = asyncio.get_running_loop().create_task(self._check_idle(), name="ilji pool check")

    async def _check_idle(self) -> None:
        try:
            await self.check()
        except Exception as exc:  # the next broken connection starts another check
            log.warning("checking the idle connections failed", extra={"pool": self.name, "error": str(exc)})


class _Translated:
    """The context manager of `Database.connection`: borrow, translate, give back.

    A class rather than `@asynccontextmanager`: this is on every append and every page read,
    and a generator-based manager costs a frame and two `send`s more per use.
    """

    __slots__ = ("_conn", "_pool", "_timeout")

    def __init__(self, pool: AsyncConnectionPool[Connection], timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: Connection | None = None

    async def __aenter__(self) -> Connection:
        try:
            self._conn = await self._pool.getconn(self._timeout)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return self._conn

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        assert conn is not None
        broken = conn.broken
        try:
            # The pool rolls back an open transaction and discards a broken connection.
            await self._pool.putconn(conn)
        except DRIVER_ERRORS as put_error:
            if exc is None:
                raise translate(put_error) from put_error
        finally:
            if broken and isinstance(self._pool, _StackPool):
                self._pool.found_broken()
        if exc is not None and isinstance(exc, DRIVER_ERRORS) and not isinstance(exc, IljiError):
            raise translate(exc) from exc


class Database:
    """One PostgreSQL server reached through a connection pool; the only owner of that pool."""

    def __init__(self, pool: AsyncConnectionPool[Connection], *, conninfo: str = "") -> None:
        self._pool = pool
        #: The URL the pool connects to (for direct connections to the same server).
        self.conninfo: str = conninfo or (pool.conninfo if isinstance(pool.conninfo, str) else "")

    @classmethod
    async def open(
        cls,
        conninfo: str,
        name: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        pooled: bool = False,
        idle_in_transaction_timeout_ms: int = 60_000,
        connect_timeout: float = 10.0,
    ) -> Database:
        """Open a pool of connections to `conninfo` and wait until one is up.

        `pooled`: the URL goes through a transaction pooler such as PgBouncer, so no prepared
        statements and no session settings. Raises `StoreUnavailable` when nothing answers.
        """
        # enable_bitmapscan=off: the planner cannot estimate the global log's visible bound
        # (a stable expression), guesses a handful of rows, and would read every row after
        # the cursor into a bitmap and sort it for each page. An ordered index scan stops
        # after `limit` rows; Ilji's queries never need bitmap scans.
        options = (
            f"-c idle_in_transaction_session_timeout={idle_in_transaction_timeout_ms}"
            " -c enable_bitmapscan=off"
            # Timestamps in UTC: recorded_at is documented as UTC, and psycopg builds
            # datetimes with the fixed UTC tzinfo much faster than with a zoneinfo zone.
            " -c timezone=UTC"
        )
        kwargs: dict[str, Any] = {"application_name": name}
        if pooled:
            # A transaction pooler lends each transaction any server connection: a statement
            # prepared on one is unknown on the next (PgBouncer before 1.21, or without
            # max_prepared_statements), so psycopg must never prepare.
            kwargs["prepare_threshold"] = None
        else:
            kwargs["options"] = options
        pool: AsyncConnectionPool[Connection] = _StackPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            configure=_configure_pooled if pooled else _configure,
            open=False,
            timeout=connect_timeout,
            name=name,
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout)
        except Exception as exc:
            await pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL ({name}): {exc}") from exc
        return cls(pool, conninfo=conninfo)

    def connection(self, timeout: float | None = None) -> _Translated:
        """`async with database.connection() as conn:` a pooled connection in autocommit mode.

        `timeout`: seconds to wait for a free connection (the pool's default when None).
        """
        return _Translated(self._pool, timeout)

    @contextlib.asynccontextmanager
    async def transaction(self, timeout: float | None = None) -> AsyncIterator[Connection]:  # noqa: ASYNC109
        """`async with database.transaction() as conn:` one transaction, committed on success."""
        async with self.connection(timeout) as conn, conn.transaction():
            yield conn

    def stats(self) -> dict[str, int]:
        """The pool's statistics (sizes, waits, errors), for metrics."""
        stats = dict(self._pool.get_stats())
        stats["pool_checks"] = self._pool.sweeps if isinstance(self._pool, _StackPool) else 0
        return stats

    async def close(self) -> None:
        """Close every connection of the pool."""
        await self._pool.close()


@contextlib.asynccontextmanager
async def connect(conninfo: str, **kwargs: Any) -> AsyncIterator[Connection]:
    """A dedicated connection in autocommit mode (LISTEN, migrations), errors translated."""
    try:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True, **kwargs) as conn:
            yield conn
    except IljiError:
        raise
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc


async def _configure(conn: Connection) -> None:
    # jsonb columns are parsed by orjson: several times faster than the json module.
    set_json_loads(orjson.loads, conn)
    await conn.set_autocommit(True)
    # After a promotion every process reconnects: the first connection records the new
    # timeline, so that readers see what is written on it (migration 0010).
    # Not migrated yet: the store's first query reports it.
    with contextlib.suppress(pg_errors.UndefinedFunction, pg_errors.InvalidSchemaName):
        await conn.execute(_NOTE_TIMELINE)


async def _configure_pooled(conn: Connection) -> None:
    await _configure(conn)
    # Behind PgBouncer the startup `options` are refused or dropped. TimeZone is one of the
    # parameters PgBouncer tracks per client and sets on whichever server connection it lends
    # that client, so a plain SET holds across transactions; the others are set per
    # transaction (read_planner.sql, transaction_timeout.sql).
    await conn.execute("SET TIME ZONE 'UTC'")
