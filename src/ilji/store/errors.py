"""The one place where database driver exceptions become Ilji errors."""

from __future__ import annotations

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from ilji.domain.errors import (
    AppendOnlyViolation,
    ConfigurationError,
    IljiError,
    PositionLimitReached,
    SchemaError,
    StoreUnavailable,
    ValidationError,
)

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
        if isinstance(exc, pg_errors.DataException):
            return ValidationError("data", _primary(exc))
        return IljiError(f"unexpected database error: {_primary(exc)}")
    if isinstance(exc, OSError):
        return StoreUnavailable(f"the database is unavailable: {exc}")
    return IljiError(f"unexpected database error: {exc}")


def _primary(exc: psycopg.Error) -> str:
    diag = exc.diag.message_primary if exc.diag else None
    return diag or str(exc).strip()
