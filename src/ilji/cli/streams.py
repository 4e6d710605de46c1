"""`ilji streams ...`: soft delete, restore, truncate, retention and scavenging (docs/en/lifecycle.md).

Every change is audited in `$audit` with the CLI as its actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from ilji.bootstrap import Runtime, Schema, migration_url
from ilji.cli._common import DatabaseUrl, DataDir, JsonOutput, invalid, on_store, out, print_json, settings_of
from ilji.domain.errors import StreamNotFound, ValidationError
from ilji.settings import Settings
from ilji.store.audit import Actor
from ilji.store.lifecycle import Retention, StreamLifecycle
from ilji.store.postgres import PostgresEventStore

#: `ilji streams ...`.
streams_commands = typer.Typer(
    help="Soft delete, restore and truncate streams, and set retention per category (audited in $audit).",
    no_args_is_help=True,
)

StreamArgument = Annotated[str, typer.Argument(help="Stream name, like order-42.")]


def _lifecycle_command(
    settings: Settings,
    json_output: bool,
    action: Callable[[Runtime], Awaitable[StreamLifecycle]],
    schema: Schema = "check",
) -> None:
    async def body(runtime: Runtime) -> None:
        state = await action(runtime)
        if state.version == 0:
            raise StreamNotFound(state.stream)
        if json_output:
            print_json(state.as_json())
            return
        hidden = min(state.first_visible_version - 1, state.version)
        status = "deleted" if state.deleted else "live"
        out.print(
            f"{state.stream}: {status}, version {state.version}, {hidden} event(s) hidden "
            f"(first visible version {state.first_visible_version})",
            highlight=False,
        )

    on_store(settings, body, schema=schema)


@streams_commands.command("show")
def streams_show_command(
    stream: StreamArgument,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Show a stream's version and what is hidden (soft delete, truncation)."""
    _lifecycle_command(
        settings_of(database_url, data_dir),
        json_output,
        lambda rt: rt.store.stream_lifecycle(stream),
        schema="read",
    )


@streams_commands.command("delete")
def streams_delete_command(
    stream: StreamArgument,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Soft-delete a stream: readers no longer see it, its events stay stored (see restore)."""
    _lifecycle_command(
        settings_of(database_url, data_dir),
        json_output,
        lambda rt: rt.store.delete_stream(stream, actor=Actor.cli()),
    )


@streams_commands.command("restore")
def streams_restore_command(
    stream: StreamArgument,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Undo a soft delete: the events it hid are visible again."""
    _lifecycle_command(
        settings_of(database_url, data_dir),
        json_output,
        lambda rt: rt.store.restore_stream(stream, actor=Actor.cli()),
    )


@streams_commands.command("truncate")
def streams_truncate_command(
    stream: StreamArgument,
    before: Annotated[int, typer.Option("--before", help="Hide versions below this one (1: show all).")],
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Hide a stream's versions below --before from every reader."""
    _lifecycle_command(
        settings_of(database_url, data_dir),
        json_output,
        lambda rt: rt.store.truncate_stream(stream, before, actor=Actor.cli()),
    )


@streams_commands.command("retention")
def streams_retention_command(
    category: Annotated[str, typer.Argument(help="Category, like order.")],
    max_age: Annotated[
        int | None, typer.Option("--max-age", help="Hide events older than this many seconds.")
    ] = None,
    max_count: Annotated[
        int | None, typer.Option("--max-count", help="Keep only each stream's newest N events.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the category's retention.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Show a category's retention, or set it (--max-age, --max-count) or remove it (--clear)."""
    if clear and (max_age is not None or max_count is not None):
        raise invalid(ValidationError("--clear", "cannot be combined with --max-age or --max-count"))
    settings = settings_of(database_url, data_dir)
    changes = clear or max_age is not None or max_count is not None

    async def body(runtime: Runtime) -> None:
        store = runtime.store
        if clear:
            await store.clear_retention(category, actor=Actor.cli())
        elif max_age is not None or max_count is not None:
            await store.set_retention(
                category, max_age_seconds=max_age, max_count=max_count, actor=Actor.cli()
            )
        rule = await store.retention(category)
        if json_output:
            print_json((rule or Retention(category)).as_json())
            return
        if rule is None:
            out.print(f"{category}: no retention (every event is kept visible)", highlight=False)
            return
        data = rule.as_json()
        out.print(
            f"{category}: max age {data['max_age_seconds'] or '-'} s, max count {data['max_count'] or '-'}",
            highlight=False,
        )

    on_store(settings, body, schema="check" if changes else "read")


@streams_commands.command("scavenge")
def streams_scavenge_command(
    batch: Annotated[int, typer.Option("--batch", min=1, max=100_000, help="Rows per transaction.")] = 1000,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Remove the rows the lifecycle rules hide, for good (each stream's newest row stays).

    Connects as the schema's owner (ILJI_MIGRATION_DATABASE_URL, else the database URL): the
    application role may not delete events. Each batch is audited in $audit.
    """
    settings = settings_of(database_url, data_dir)

    async def body(runtime: Runtime) -> None:
        owner = await PostgresEventStore.open(migration_url(settings, runtime.url), max_size=2)
        removed = 0
        try:
            columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"))
            with Progress(*columns, console=out, transient=True) as progress:
                task = progress.add_task("scavenging", total=None)
                while count := await owner.scavenge_batch(batch, actor=Actor.cli()):
                    removed += count
                    progress.update(task, completed=removed)
        finally:
            await owner.close()
        out.print(f"removed {removed:,} hidden row(s)", highlight=False)

    on_store(settings, body)
