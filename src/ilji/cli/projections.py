"""`ilji projections ...`: inspect and operate projections (status, pause, rebuild, parked events)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from ilji.bootstrap import Runtime
from ilji.cli._common import (
    EXIT_ERROR,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    DatabaseUrl,
    DataDir,
    JsonOutput,
    err,
    fail,
    on_store,
    out,
    print_json,
    settings_of,
)
from ilji.cli._output import partitions_table
from ilji.domain.shapes import to_json, utc_text
from ilji.projections import (
    ProjectionNotFound,
    WaitTimeout,
    list_parked,
    pause,
    rebuild_progress,
    replay_parked,
    request_rebuild,
    resume,
    status,
    wait_for_position,
)
from ilji.projections.shapes import projection_json
from ilji.settings import Settings
from ilji.store.audit import Actor

#: `ilji projections ...`.
projections_commands = typer.Typer(
    help="Inspect and operate projections (read models).", no_args_is_help=True
)

#: The columns of `ilji projections status` (see `ilji.cli._output.PARTITION_COLUMNS`).
STATUS_COLUMNS = (
    "projection",
    "version",
    "part",
    "state",
    "checkpoint",
    "behind",
    "lag s",
    "events/s",
    "owner",
    "parked",
)

ProjectionName = Annotated[str, typer.Argument(help="The projection's name.")]


def _not_found(exc: ProjectionNotFound) -> typer.Exit:
    fail(exc.message)
    return typer.Exit(EXIT_NOT_FOUND)


@projections_commands.command("status")
def projections_status_command(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Checkpoint, lag, rate, owner, state and parked events of every partition."""

    async def body(runtime: Runtime) -> None:
        try:
            items = await status(runtime.store, name)
        except ProjectionNotFound as exc:
            raise _not_found(exc) from None
        if json_output:
            print_json([projection_json(st) for st in items])
            return
        rows = [(st, p) for st in items for p in [*st.partitions, *st.rebuilding]]
        out.print(partitions_table(STATUS_COLUMNS, rows))
        for st in items:
            for w in st.workers:
                runs = ", ".join(f"v{v}" for v in w.versions) or "nothing"
                out.print(
                    f"{st.name}: worker {w.worker} (code version {w.code_version}) {w.state}: runs {runs}",
                    highlight=False,
                )
            for error in st.errors:
                err.print(f"[red]refused:[/red] {error}", highlight=False)

    on_store(settings_of(database_url, data_dir), body, schema="read")


def _admin_command(action: Callable[[Runtime], Awaitable[str]], settings: Settings) -> None:
    async def body(runtime: Runtime) -> None:
        try:
            out.print(await action(runtime), highlight=False)
        except ProjectionNotFound as exc:
            raise _not_found(exc) from None

    on_store(settings, body)


@projections_commands.command("pause")
def projections_pause_command(
    name: ProjectionName, database_url: DatabaseUrl = None, data_dir: DataDir = None
) -> None:
    """Pause a projection (its workers release it within a third of the lease TTL)."""

    async def action(runtime: Runtime) -> str:
        await pause(runtime.store, name, actor=Actor.cli())
        return f"{name}: paused"

    _admin_command(action, settings_of(database_url, data_dir))


@projections_commands.command("resume")
def projections_resume_command(
    name: ProjectionName, database_url: DatabaseUrl = None, data_dir: DataDir = None
) -> None:
    """Resume a paused projection, and restart partitions stopped by a poison event."""

    async def action(runtime: Runtime) -> str:
        await resume(runtime.store, name, actor=Actor.cli())
        return f"{name}: resumed"

    _admin_command(action, settings_of(database_url, data_dir))


@projections_commands.command("rebuild")
def projections_rebuild_command(
    name: ProjectionName,
    watch: Annotated[
        bool, typer.Option("--watch/--no-watch", help="Show progress until the cutover.")
    ] = True,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Build the next version from position 0 beside the serving one, then cut over."""

    async def body(runtime: Runtime) -> None:
        try:
            version = await request_rebuild(runtime.store, name, actor=Actor.cli())
        except ProjectionNotFound as exc:
            raise _not_found(exc) from None
        out.print(f"{name}: version {version} requested; a running `ilji worker` builds it", highlight=False)
        if not watch:
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} events/s  ETA {task.fields[eta]}"),
        )
        with Progress(*columns, console=out) as progress:
            task = progress.add_task(f"{name} v{version}", total=None, rate="–", eta="–")
            async for item in rebuild_progress(runtime.store, name, interval=0.5):
                if item.done:
                    progress.update(task, completed=1, total=1, eta="0s")
                    break
                eta = f"{item.eta_seconds:.0f}s" if item.eta_seconds is not None else "–"
                progress.update(
                    task,
                    completed=item.events_applied,
                    total=item.events_applied + item.events_behind,
                    rate=f"{item.events_per_second:,.0f}",
                    eta=eta,
                )
        out.print(f"{name}: cut over to version {version}", highlight=False)

    # Watching is all an interruption stops: a requested rebuild goes on in the workers.
    on_store(
        settings_of(database_url, data_dir),
        body,
        interrupted=f"stopped watching; a rebuild already requested goes on in the workers "
        f"(`ilji projections status {name}`)",
    )


@projections_commands.command("parked")
def projections_parked_command(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed events.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """List events projections gave up on (poison events)."""

    async def body(runtime: Runtime) -> None:
        items = await list_parked(runtime.store, name, include_replayed=all_)
        if json_output:
            print_json(to_json(items))
            return
        table = Table(
            "projection", "version", "position", "event id", "stream", "type", "attempts", "error", "replayed"
        )
        for p in items:
            table.add_row(
                p.projection,
                str(p.version),
                str(p.position),
                str(p.event_id),
                p.stream,
                p.type,
                str(p.attempts),
                p.error,
                utc_text(p.replayed_at) if p.replayed_at else "–",
            )
        out.print(table)

    on_store(settings_of(database_url, data_dir), body, schema="read")


@projections_commands.command("replay")
def projections_replay_command(
    name: ProjectionName,
    event_id: Annotated[
        list[str] | None, typer.Option("--event-id", help="Only these parked events (repeatable).")
    ] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Ask the owning worker to apply parked events once (after you fixed the handler)."""
    try:
        ids = [uuid.UUID(i) for i in event_id] if event_id else None
    except ValueError:
        fail("--event-id must be a UUID")
        raise typer.Exit(EXIT_INVALID) from None

    async def action(runtime: Runtime) -> str:
        count = await replay_parked(runtime.store, name, ids, actor=Actor.cli())
        return f"{name}: {count} replay(s) requested"

    _admin_command(action, settings_of(database_url, data_dir))


@projections_commands.command("wait")
def projections_wait_command(
    name: ProjectionName,
    position: Annotated[int, typer.Argument(min=0, help="Wait until the projection reflects this position.")],
    timeout: Annotated[float, typer.Option("--timeout", min=0.0)] = 10.0,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Wait until a projection has dealt with every event up to POSITION (exit 1 on timeout)."""

    async def action(runtime: Runtime) -> str:
        try:
            await wait_for_position(runtime.store, name, position, timeout)
        except WaitTimeout as exc:
            fail(exc.message)
            raise typer.Exit(EXIT_ERROR) from None
        return f"{name}: reached {position}"

    _admin_command(action, settings_of(database_url, data_dir))
