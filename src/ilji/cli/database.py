"""`ilji migrate` and `ilji db grant`: the schema and the roles, done as the schema's owner."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ilji.bootstrap import database_running, migration_url
from ilji.cli._common import DatabaseUrl, DataDir, out, run, settings_of
from ilji.store.migrate import latest_version, migrate
from ilji.store.roles import grant_app_role


def migrate_command(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Apply pending schema migrations (safe to run from many replicas at once)."""
    # The only command that changes a configured database's schema; while another process
    # holds the migration lock it says so and waits (Ctrl-C stops it at once).
    settings = settings_of(database_url, data_dir)

    async def main() -> None:
        async with database_running(settings) as (url, _):
            applied = await migrate(migration_url(settings, url))
        if applied:
            for m in applied:
                out.print(f"applied migration {m.version:04d} {m.name}")
        else:
            out.print(f"schema is up to date (version {latest_version()})")

    # Each migration is one transaction: an interrupted one is rolled back, those before stay.
    run(
        main,
        interrupted="migrations applied before it stay; one in progress was rolled back. "
        "Run `ilji migrate` again to finish",
    )


#: `ilji db ...`: database roles.
db_commands = typer.Typer(
    help="Database roles: least privilege for servers and workers.", no_args_is_help=True
)


@db_commands.command("grant")
def db_grant_command(
    role: Annotated[str, typer.Option("--role", help="The app role servers and workers connect as.")],
    read_models: Annotated[
        str | None,
        typer.Option(
            "--read-models",
            help="Schema where the role may create read-model tables (default: named like the role).",
            show_default=False,
        ),
    ] = None,
    no_read_models: Annotated[
        bool, typer.Option("--no-read-models", help="Create no read-model schema.")
    ] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Migrate, then grant ROLE exactly what Ilji needs (append and read events, never change them).

    Connects as the schema's owner: ILJI_MIGRATION_DATABASE_URL, else the database URL.
    """
    settings = settings_of(database_url, data_dir)
    schema = None if no_read_models else (read_models or role)

    async def main() -> None:
        async with database_running(settings) as (url, _):
            owner_url = migration_url(settings, url)
            await migrate(owner_url)
            granted = await grant_app_role(owner_url, role, read_models=schema)
        table = Table(title=f"privileges of {role} in schema ilji", title_justify="left")
        table.add_column("table")
        table.add_column("privileges")
        for item in granted:
            table.add_row(item.table, item.privileges)
        out.print(table)
        if schema:
            out.print(f"read models: {role} may create tables in schema {schema}")

    run(
        main,
        interrupted=f"migrations and grants are each one transaction: those done stay, none is "
        f"half-done; run `ilji db grant --role {role}` again to finish",
    )
