"""Least-privilege database roles: the schema's owner grants an app role what Ilji needs.

Migrations run as the role that owns schema `ilji` (ILJI_MIGRATION_DATABASE_URL). Servers and
workers can run as a separate app role that may append and read events but never update,
delete or truncate them, nor change the schema. The policy itself (which table gets which
privileges) lives in SQL, in migration 0006, so that every later `ilji migrate` re-applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import errors as pg_errors

from ilji.domain.errors import SchemaError, ValidationError
from ilji.store import sql
from ilji.store.database import connect

_ADD = sql.load("app_role_add")
_PRIVILEGES = sql.load("app_role_privileges")

# SQLSTATE that ilji.add_app_role() raises for a role it refuses (migration 0006).
_REFUSED = "IJ010"


@dataclass(frozen=True, slots=True)
class TablePrivileges:
    """The privileges a role holds on one table of schema ilji."""

    table: str
    privileges: str


async def grant_app_role(conninfo: str, role: str, *, read_models: str | None) -> list[TablePrivileges]:
    """Register `role` as an app role and grant it its privileges; return what it now holds.

    `conninfo` must connect as the schema's owner (or a superuser). `read_models` names a
    schema (created if missing) where the role may create its projections' tables; a schema
    named like the role is on PostgreSQL's default search path (`"$user", public`).
    """
    if not role.strip():
        raise ValidationError("role", "must name a database role")
    async with connect(conninfo) as conn:
        # The refusals are caught here, before the seam would translate them generically.
        try:
            cur = await conn.execute("SELECT to_regprocedure('ilji.add_app_role(name, name)') IS NOT NULL")
            row = await cur.fetchone()
            if not row or not row[0]:
                raise SchemaError("the schema predates app roles (migration 0006): run `ilji migrate` first")
            await conn.execute(_ADD, {"role": role, "read_models": read_models})
            cur = await conn.execute(_PRIVILEGES, {"role": role})
            return [TablePrivileges(table, privileges) for table, privileges in await cur.fetchall()]
        except pg_errors.InsufficientPrivilege as exc:
            raise ValidationError(
                "database_url", "only the role that owns the Ilji schema may grant privileges"
            ) from exc
        except pg_errors.Error as exc:
            if exc.sqlstate == _REFUSED:
                raise ValidationError("role", exc.diag.message_primary or str(exc)) from exc
            raise
