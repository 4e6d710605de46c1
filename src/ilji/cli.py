"""The `ilji` command: run, inspect and script the event store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import shutil
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from pydantic_core import PydanticUndefined
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

import ilji
from ilji.bootstrap import Runtime, Schema, open_runtime
from ilji.domain.errors import (
    ConfigurationError,
    ConflictError,
    EmbeddedPostgresError,
    IljiError,
    SchemaError,
    SchemaTooNew,
    StoreUnavailable,
    StreamNotFound,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.domain.events import NO_STREAM, TRANSACTION_IDS_WARNING, NewEvent, RecordedEvent, new_event_id
from ilji.domain.validation import validate_expected_version
from ilji.logs import configure_logging
from ilji.projections import admin as projections_admin
from ilji.projections.errors import ProjectionNotFound, WaitTimeout
from ilji.projections.worker import Worker
from ilji.projections.worker_main import load_projections
from ilji.server.models import event_json
from ilji.settings import Settings, load_settings, setting_name
from ilji.store.audit import Actor
from ilji.store.lifecycle import Retention, StreamLifecycle
from ilji.store.migrate import check_schema, latest_version, migrate
from ilji.store.port import Direction

#: Help as `-h` too, on every command (sub-commands inherit it).
HELP = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="ilji",
    help="Ilji (일지): an event store for Python on PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=HELP,
)


def _console(*, stderr: bool) -> Console:
    # Not a terminal (a pipe, a file, a CI log): never hard-wrap or truncate at 80 columns, so
    # that grep and scripts see each line whole; a terminal keeps rich's folding.
    tty = (sys.stderr if stderr else sys.stdout).isatty()
    return Console(stderr=stderr, soft_wrap=not tty, width=None if tty else 1_000_000)


out = _console(stderr=False)
err = _console(stderr=True)

T = TypeVar("T")

# Exit codes a script can rely on (docs/en/cli.md). 2: fix the input or the configuration,
# trying again will not help; 5: unavailable, trying again may; 128+N: stopped by signal N.
EXIT_ERROR, EXIT_INVALID, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 1, 2, 3, 4, 5

#: Most events one page of `ilji read` / `ilji tail` asks for: the HTTP contract's bound.
PAGE_LIMIT = 1000


def _setting(field: str, *flags: str, **kwargs: Any) -> Any:
    """A flag for a setting; its help is the setting's own description and variable (one source)."""
    info = Settings.model_fields[field]
    default = info.default
    shown = f"; default {default}" if default not in (None, (), PydanticUndefined) else ""
    text = info.description or field
    return typer.Option(
        *flags or (setting_name(field, {field}),),
        help=f"{text[:1].upper()}{text[1:]}{shown} (env {setting_name(field)}).",
        show_default=False,
        **kwargs,
    )


DatabaseUrl = Annotated[str | None, _setting("database_url")]
DataDir = Annotated[Path | None, _setting("data_dir")]
LogLevel = Annotated[str | None, _setting("log_level")]
LogFormat = Annotated[str | None, _setting("log_format")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"ilji {ilji.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print Ilji's version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    """Ilji (일지): an event store for Python on PostgreSQL."""


def _settings(**flags: Any) -> Settings:
    """The settings (environment, then the flags given); a bad one is one line and exit 2."""
    try:
        settings = load_settings(**flags)
    except ConfigurationError as exc:
        raise typer.Exit(_report(exc)) from None
    configure_logging(settings.log_format, settings.log_level, quiet=True)
    return settings


#: What an interrupted command left behind, unless it says better.
INTERRUPTED = "stopped before it finished; each change is one transaction, so none is half-done"


def _run(main: Callable[[], Coroutine[Any, Any, T]], *, interrupted: str | None = INTERRUPTED) -> T:
    """Run `main` on an event loop; map errors to exit codes.

    SIGINT/SIGTERM cancel it at once (a wait for a lock or a query included: psycopg cancels
    the statement), cleanup runs, and the command exits 128+N saying what state it left, so
    that CI or a Kubernetes Job never records an interrupted command as a success.
    `interrupted=None` is for commands that run until stopped (`tail --follow`): exit 0.
    """
    received: list[int] = []

    async def wrapper() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def stop(sig: int) -> None:
            received.append(sig)
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        return await main()

    try:
        return asyncio.run(wrapper())
    except (asyncio.CancelledError, KeyboardInterrupt):
        sig = received[0] if received else signal.SIGINT
        if interrupted is None and received:
            raise typer.Exit(0) from None
        err.print(f"interrupted by {signal.Signals(sig).name}: {interrupted}", highlight=False)
        raise typer.Exit(128 + sig) from None
    except IljiError as exc:
        raise typer.Exit(_report(exc)) from None


def _report(exc: IljiError) -> int:
    # One line, whatever the driver's message holds (libpq adds a hint on a second line).
    err.print(f"[red]error:[/red] {' '.join(exc.message.split())}", highlight=False)
    if isinstance(exc, ValidationError | ConfigurationError | SchemaTooNew):
        return EXIT_INVALID
    if isinstance(exc, ConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, StreamNotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, StoreUnavailable | EmbeddedPostgresError | SchemaError):
        return EXIT_UNAVAILABLE
    return EXIT_ERROR


def _with_runtime(
    settings: Settings,
    body: Callable[[Runtime], Awaitable[T]],
    *,
    schema: Schema = "check",
    interrupted: str | None = INTERRUPTED,
) -> T:
    """Open the runtime (the schema checked, or migrated: see `ilji.bootstrap.Schema`), run `body`."""

    async def main() -> T:
        async with open_runtime(settings, schema=schema) as runtime:
            return await body(runtime)

    return _run(main, interrupted=interrupted)


def _command_name() -> str:
    """How the user runs `ilji`: its name when it is on PATH, else the path they typed."""
    typed = sys.argv[0]
    found = shutil.which("ilji")
    if found and Path(found).resolve() == Path(typed).resolve():
        return "ilji"
    if Path(typed).name == "ilji" and Path(typed).exists():
        return typed
    return "ilji" if found else f"{Path(sys.executable).name} -m ilji.cli"


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


def _events_table(title: str, events: list[RecordedEvent]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("position", "stream", "version", "type", "recorded at", "data"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(
            str(e.position),
            e.stream,
            str(e.version),
            e.type,
            e.recorded_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            orjson.dumps(e.data).decode(),
        )
    return table


def _parse_json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(option, f"is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValidationError(option, "must be a JSON object, like '{\"seats\": 2}'")
    return value


def _parse_expected(text: str) -> int | Any:
    value: object = int(text) if text.lstrip("-").isdigit() else text
    return validate_expected_version(value)


@app.command("migrate")
def migrate_command(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Apply pending schema migrations (safe to run from many replicas at once)."""
    # The only command that changes a configured database's schema; while another process
    # holds the migration lock it says so and waits (Ctrl-C stops it at once).
    settings = _settings(database_url=database_url, data_dir=data_dir)

    async def main() -> None:
        from ilji.bootstrap import database_url as resolve
        from ilji.bootstrap import migration_url

        url, embedded = await resolve(settings)
        try:
            applied = await migrate(migration_url(settings, url))
        finally:
            if embedded:
                await asyncio.to_thread(embedded.stop)
        if applied:
            for m in applied:
                out.print(f"applied migration {m.version:04d} {m.name}")
        else:
            out.print(f"schema is up to date (version {latest_version()})")

    # Each migration is one transaction: an interrupted one is rolled back, those before stay.
    _run(
        main,
        interrupted="migrations applied before it stay; one in progress was rolled back. "
        "Run `ilji migrate` again to finish",
    )


@app.command("append")
def append_command(
    stream: Annotated[str | None, typer.Argument(help="Stream name, like order-42.")] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", "-t", help="Event type, like OrderPlaced.")
    ] = None,
    data: Annotated[str, typer.Option("--data", "-d", help="Event data as a JSON object.")] = "{}",
    metadata: Annotated[str, typer.Option("--metadata", "-m", help="Metadata JSON object.")] = "{}",
    event_id: Annotated[
        str | None, typer.Option("--id", help="Event id (UUID) to make retries idempotent.")
    ] = None,
    expected_version: Annotated[
        str, typer.Option("--expected-version", "-e", help="A version, any, no_stream or exists.")
    ] = "any",
    parts_file: Annotated[
        str | None,
        typer.Option(
            "--parts",
            help="Several streams at once, all or nothing: a JSON file (- for stdin) shaped like "
            'POST /v1/append\'s body, {"parts": [{"stream", "expected_version", "events"}]}.',
        ),
    ] = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Append one event to a stream, or several streams' events in one transaction (--parts)."""
    settings = _settings(database_url=database_url, data_dir=data_dir)
    if parts_file is not None:
        if stream is not None or event_type is not None:
            raise typer.Exit(
                _report(ValidationError("--parts", "give either --parts or STREAM --type, not both"))
            )
        _append_parts(settings, parts_file, json_output)
        return
    try:
        if stream is None:
            raise ValidationError("stream", "missing: give STREAM --type TYPE, or --parts FILE")
        if event_type is None:
            raise ValidationError("--type", "missing: the event type, like OrderPlaced")
        expected = _parse_expected(expected_version)
        body = _parse_json_object(data, "--data")
        meta = _parse_json_object(metadata, "--metadata")
        try:
            eid = uuid.UUID(event_id) if event_id else new_event_id()
        except ValueError:
            raise ValidationError("--id", f"{event_id!r} is not a UUID") from None
    except IljiError as exc:
        raise typer.Exit(_report(exc)) from None
    event = NewEvent(type=event_type, data=body, metadata=meta, id=eid)

    async def body_(runtime: Runtime) -> None:
        result = await runtime.store.append(stream, [event], expected)
        if json_output:
            _print_json(
                {
                    "stream": result.stream,
                    "first_version": result.first_version,
                    "last_version": result.last_version,
                    "first_position": result.first_position,
                    "last_position": result.last_position,
                    "idempotent": result.idempotent,
                }
            )
        else:
            again = " (already stored: idempotent retry)" if result.idempotent else ""
            out.print(
                f"appended {event_type} to {stream} as version {result.last_version} "
                f"at position {result.last_position}{again}",
                highlight=False,
            )

    _with_runtime(settings, body_)


def _read_parts(source: str) -> list[tuple[Any, list[NewEvent], Any]]:
    """The parts of `ilji append --parts`: from a file, or stdin for `-`."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError("--parts", f"cannot read {source}: {exc.strerror}") from None
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("--parts", f"is not valid JSON: {exc}") from None
    raw_parts = document.get("parts") if isinstance(document, dict) else document
    if not isinstance(raw_parts, list):
        raise ValidationError("--parts", 'must hold {"parts": [...]} or a list of parts')
    parts = []
    for k, raw in enumerate(raw_parts):
        where = f"parts[{k}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
            raise ValidationError(where, 'must be an object with "stream" and a list of "events"')
        events = []
        for i, item in enumerate(raw["events"]):
            if not isinstance(item, dict):
                raise ValidationError(f"{where}.events[{i}]", "must be an object with a type")
            try:
                eid = uuid.UUID(str(item["id"])) if item.get("id") is not None else new_event_id()
            except ValueError:
                raise ValidationError(f"{where}.events[{i}].id", "is not a UUID") from None
            events.append(
                NewEvent(
                    type=item.get("type", ""),  # checked by the store, which names the part
                    data=item.get("data", {}),
                    metadata=item.get("metadata", {}),
                    id=eid,
                )
            )
        expected = raw.get("expected_version", "any")
        parts.append((raw.get("stream"), events, expected))  # checked by the store
    return parts


def _append_parts(settings: Settings, source: str, json_output: bool) -> None:
    try:
        parts = _read_parts(source)
    except IljiError as exc:
        raise typer.Exit(_report(exc)) from None

    async def body_(runtime: Runtime) -> None:
        results = await runtime.store.append_streams(parts)
        if json_output:
            _print_json({"parts": [{**dataclasses.asdict(r)} for r in results]})
            return
        for result in results:
            again = " (already stored: idempotent retry)" if result.idempotent else ""
            out.print(
                f"appended {result.last_version - result.first_version + 1} event(s) to {result.stream} "
                f"as versions {result.first_version}..{result.last_version} at positions "
                f"{result.first_position}..{result.last_position}{again}",
                highlight=False,
            )

    _with_runtime(settings, body_)


async def _read_pages(
    read: Callable[[int | None, int], Awaitable[list[RecordedEvent]]], limit: int | None, step: int
) -> list[RecordedEvent]:
    """Up to `limit` events (all when None), asked for in pages of at most PAGE_LIMIT.

    `read(cursor, n)` reads n events from `cursor` (None: the start); each next cursor is the
    last event's version or position plus `step` (stream versions) or itself (positions).
    """
    events: list[RecordedEvent] = []
    cursor: int | None = None
    while limit is None or len(events) < limit:
        want = PAGE_LIMIT if limit is None else min(PAGE_LIMIT, limit - len(events))
        page = await read(cursor, want)
        events.extend(page)
        if len(page) < want:
            break
        last = page[-1]
        cursor = last.version + step if step else last.position
    return events


ReadLimit = Annotated[
    int | None,
    typer.Option(
        "--limit",
        min=1,
        help=f"At most this many events (read {PAGE_LIMIT} at a time); default: the whole stream.",
        show_default=False,
    ),
]


@app.command("read")
def read_command(
    stream: Annotated[str, typer.Argument(help="Stream name.")],
    from_version: Annotated[int | None, typer.Option("--from-version", min=0)] = None,
    limit: ReadLimit = None,
    backward: Annotated[bool, typer.Option("--backward", help="Newest first.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print a stream's events: all of them, or --limit of them from --from-version."""
    settings = _settings(database_url=database_url, data_dir=data_dir)

    async def body(runtime: Runtime) -> None:
        direction: Direction = "backward" if backward else "forward"

        reader = runtime.store.reader  # a hot standby when ILJI_READ_DATABASE_URL is set

        async def page(cursor: int | None, n: int) -> list[RecordedEvent]:
            start = from_version if cursor is None else cursor
            return await reader.read_stream(stream, start, n, direction)

        events = await _read_pages(page, limit, -1 if backward else 1)
        if not events:
            (await reader.stream_lifecycle(stream)).check_readable()
        if json_output:
            _print_json({"stream": stream, "events": [event_json(e) for e in events]})
        else:
            out.print(_events_table(f"stream {stream}", events))

    _with_runtime(settings, body, schema="read")


@app.command("tail")
def tail_command(
    category: Annotated[str | None, typer.Option("--category", "-c", help="Only this category.")] = None,
    after: Annotated[int, typer.Option("--after", min=0, help="Start after this position.")] = 0,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help=f"At most this many events (read {PAGE_LIMIT} at a time).")
    ] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print the global log (or one category), --limit events after --after; --follow: live."""
    settings = _settings(database_url=database_url, data_dir=data_dir)

    async def body(runtime: Runtime) -> None:
        store = runtime.store.reader  # a hot standby when ILJI_READ_DATABASE_URL is set
        if follow:
            async for event in store.follow(after, category=category):
                if json_output:
                    _print_json(event_json(event))
                else:
                    out.print(
                        f"{event.position:>16}  {event.stream}@{event.version}  {event.type}  "
                        f"{orjson.dumps(event.data).decode()}",
                        highlight=False,
                    )
            return

        async def page(cursor: int | None, n: int) -> list[RecordedEvent]:
            start = after if cursor is None else cursor
            if category:
                return await store.read_category(category, start, n)
            return await store.read_all(start, n)

        events = await _read_pages(page, limit, 0)
        nxt = events[-1].position if events else after
        if json_output:
            _print_json({"events": [event_json(e) for e in events], "next": nxt})
        else:
            out.print(_events_table(f"{'category ' + category if category else '$all'}", events))
            out.print(f"next: --after {nxt}", highlight=False)

    # Following runs until stopped: a signal is its normal end, not an interruption.
    stopped = None if follow else "stopped; nothing was changed"
    _with_runtime(settings, body, schema="read", interrupted=stopped)


def _info_warnings(prepared: int, ids_left: int) -> list[str]:
    """What `ilji info` tells an operator to act on."""
    warnings = []
    if prepared:
        warnings.append(
            f"{prepared} prepared (two-phase) transaction(s) wait for COMMIT PREPARED or ROLLBACK "
            "PREPARED; they hold back the global log (see pg_prepared_xacts)"
        )
    if ids_left < TRANSACTION_IDS_WARNING:
        warnings.append(
            f"only {ids_left} transaction ids left before appends stop at 2^41 "
            "(see 'Transaction ids' in docs/en/operations.md)"
        )
    return warnings


@app.command("info")
def info_command(
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Show where the store is and what it holds."""
    settings = _settings(database_url=database_url, data_dir=data_dir)

    async def body(runtime: Runtime) -> None:
        info = await runtime.store.info()
        oldest = await runtime.store.oldest_transaction_age()
        ids_left = await runtime.store.transaction_ids_left()
        data = {
            "database": info.database,
            "server_version": info.server_version,
            "embedded_data_dir": str(runtime.embedded.data_dir) if runtime.embedded else None,
            # The database's own version; the code's is beside it, so a mismatch shows.
            "schema_version": await check_schema(runtime.url, writes=False),
            "code_schema_version": latest_version(),
            "streams": info.streams,
            "events": info.events,
            "last_position": info.last_position,
            "oldest_open_transaction_seconds": round(oldest, 3),
            "prepared_transactions": info.prepared_transactions,
            "transaction_ids_left": ids_left,
            "group_commit": "on" if runtime.store.group_commit else "off",
        }
        warnings = _info_warnings(info.prepared_transactions, ids_left)
        if json_output:
            _print_json({**data, "warnings": warnings})
            return
        table = Table(show_header=False, title="Ilji", title_justify="left")
        for key, value in data.items():
            table.add_row(key.replace("_", " "), "-" if value is None else str(value))
        out.print(table)
        for warning in warnings:
            out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)

    _with_runtime(settings, body, schema="read", interrupted="stopped; nothing was changed")


@app.command("quickstart")
def quickstart_command(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """A guided tour: append events, read them back, and see optimistic concurrency at work."""
    settings = _settings(database_url=database_url, data_dir=data_dir)

    async def body(runtime: Runtime) -> None:
        store = runtime.store
        stream = f"cart-{uuid.uuid4().hex[:8]}"
        where = (
            f"the embedded PostgreSQL in {runtime.embedded.data_dir}"
            if runtime.embedded
            else "the PostgreSQL at ILJI_DATABASE_URL"
        )
        out.print("[bold]Ilji quickstart[/bold]")
        out.print(f"Using {where}.\n")
        out.print(f"1. Append two events to a new stream [bold]{stream}[/bold], expecting no stream:")
        first = await store.append(
            stream,
            [
                NewEvent("ItemAdded", {"sku": "tea", "qty": 2}),
                NewEvent("ItemAdded", {"sku": "cup", "qty": 1}),
            ],
            NO_STREAM,
        )
        out.print(f"   stored as versions {first.first_version}-{first.last_version}.\n")
        out.print("2. Read the stream back:")
        out.print(_events_table(stream, await store.read_stream(stream)))
        out.print("\n3. Two writers both read version 2 and append. Only one can win:")
        await store.append(stream, [NewEvent("ItemRemoved", {"sku": "cup"})], 2)
        out.print("   writer A appended ItemRemoved at version 3.")
        try:
            await store.append(stream, [NewEvent("CheckedOut", {})], 2)
        except WrongExpectedVersion as exc:
            out.print(
                f"   writer B was refused: expected {exc.expected}, actual {exc.actual}. "
                "It reloads the stream, decides again and retries.\n"
            )
        out.print("4. A retry with the same event id is idempotent:")
        event = NewEvent("CheckedOut", {"total": 7})
        a = await store.append(stream, [event], 3)
        b = await store.append(stream, [event], 3)
        out.print(
            f"   first call: version {a.last_version}; retry: version {b.last_version}, "
            f"idempotent={b.idempotent}.\n"
        )
        command = _command_name()
        out.print("Try it yourself:")
        out.print(f"   {command} read {stream}", highlight=False)
        out.print(f"   {command} tail --follow   (and append from another terminal)", highlight=False)

    _with_runtime(settings, body, schema="embedded")


DEMOS = ("conference", "ships", "orders")


@app.command("demo")
def demo_command(
    name: Annotated[str, typer.Argument(help="conference, ships or orders.", show_default=False)],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Walk through one of the example domains step by step, explaining what happens."""
    if name not in DEMOS:
        err.print(f"[red]error:[/red] demo: choose one of {', '.join(DEMOS)}, not {name!r}")
        raise typer.Exit(EXIT_INVALID)
    settings = _settings(database_url=database_url, data_dir=data_dir)
    try:
        module = importlib.import_module(f"examples.{name}.demo")
    except ImportError as exc:
        err.print(f"[red]error:[/red] the example domains are not installed ({exc}); reinstall Ilji")
        raise typer.Exit(EXIT_ERROR) from None

    async def body(runtime: Runtime) -> None:
        await module.run_demo(runtime.store, lambda line: out.print(line, markup=False, highlight=False))

    _with_runtime(settings, body, schema="embedded")


@app.command("serve")
def serve_command(
    host: Annotated[str | None, _setting("host")] = None,
    port: Annotated[int | None, _setting("port")] = None,
    workers: Annotated[int | None, _setting("workers")] = None,
    example: Annotated[list[str] | None, _setting("examples", "--example")] = None,
    tls_cert: Annotated[Path | None, _setting("tls_cert")] = None,
    tls_key: Annotated[Path | None, _setting("tls_key")] = None,
    allowed_hosts: Annotated[str | None, _setting("allowed_hosts")] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Run the HTTP server (API v1, SSE, /healthz, /readyz, /metrics) until SIGTERM."""
    # What can be checked without starting anything first (the port is free, TLS files load,
    # tokens and rates parse), then the database (the embedded one is started and migrated; a
    # configured one must be migrated already: `ilji migrate`), then uvicorn.
    from ilji.bootstrap import database_url as resolve
    from ilji.bootstrap import prepare_schema
    from ilji.server.run import preflight, serve  # the server's dependencies load only here

    settings = _settings(
        database_url=database_url,
        data_dir=data_dir,
        host=host,
        port=port,
        workers=workers,
        examples=tuple(example) if example else None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        allowed_hosts=allowed_hosts,
        log_level=log_level,
        log_format=log_format,
    )
    try:
        preflight(settings)
    except IljiError as exc:
        raise typer.Exit(_report(exc)) from None
    configure_logging(settings.log_format, settings.log_level)

    async def prepare() -> tuple[str, Any]:
        # Before uvicorn starts: a wrong password or a closed port is one line here, a wait
        # for the migration lock is said, and Ctrl-C stops it at once.
        url, embedded = await resolve(settings)
        try:
            await prepare_schema(settings, url, embedded is not None, "embedded")
        except BaseException:
            if embedded:
                await asyncio.to_thread(embedded.stop)
            raise
        return url, embedded

    url, embedded = _run(prepare, interrupted="stopped before serving")
    try:
        # This process keeps the embedded server's handle while it serves; the app connects to it.
        serve(settings.model_copy(update={"database_url": url}) if embedded else settings)
    except IljiError as exc:
        raise typer.Exit(_report(exc)) from None
    finally:
        if embedded:
            embedded.stop()


# -- security: `ilji db grant` and `ilji token ...` -----------------------------------------


db_app = typer.Typer(help="Database roles: least privilege for servers and workers.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("grant")
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
    from ilji.bootstrap import database_url as resolve
    from ilji.bootstrap import migration_url
    from ilji.store.roles import grant_app_role

    settings = _settings(database_url=database_url, data_dir=data_dir)
    schema = None if no_read_models else (read_models or role)

    async def main() -> None:
        url, embedded = await resolve(settings)
        try:
            owner_url = migration_url(settings, url)
            await migrate(owner_url)
            granted = await grant_app_role(owner_url, role, read_models=schema)
        finally:
            if embedded:
                await asyncio.to_thread(embedded.stop)
        table = Table(title=f"privileges of {role} in schema ilji", title_justify="left")
        table.add_column("table")
        table.add_column("privileges")
        for item in granted:
            table.add_row(item.table, item.privileges)
        out.print(table)
        if schema:
            out.print(f"read models: {role} may create tables in schema {schema}")

    _run(
        main,
        interrupted=f"migrations and grants are each one transaction: those done stay, none is "
        f"half-done; run `ilji db grant --role {role}` again to finish",
    )


token_app = typer.Typer(help="API tokens for ILJI_API_TOKENS.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("new")
def token_new_command(
    role: Annotated[str, typer.Option("--role", help="read, write or admin.")] = "read",
    as_json: JsonOutput = False,
) -> None:
    """Make a random token; print it once, with the hashed entry for ILJI_API_TOKENS."""
    from ilji.server.auth import Role, hash_token, new_token

    if role.upper() not in Role.__members__:
        err.print(f"[red]error:[/red] --role: choose read, write or admin, not {role!r}")
        raise typer.Exit(EXIT_INVALID)
    token = new_token()
    entry = f"{hash_token(token)}={role.lower()}"
    if as_json:
        _print_json({"token": token, "entry": entry, "role": role.lower()})
        return
    out.print(f"token: {token}", highlight=False, soft_wrap=True)
    out.print(f"entry: {entry}", highlight=False, soft_wrap=True)
    err.print("Give the token to its client; put only the entry in ILJI_API_TOKENS.")


@token_app.command("hash")
def token_hash_command(
    token: Annotated[
        str | None,
        typer.Argument(help="The token (default: read from stdin, which keeps it out of shell history)."),
    ] = None,
) -> None:
    """Print the `sha256:...` form of a token, which ILJI_API_TOKENS accepts in its place."""
    from ilji.server.auth import hash_token

    value = (token if token is not None else sys.stdin.readline()).strip()
    if not value:
        err.print("[red]error:[/red] no token given")
        raise typer.Exit(EXIT_INVALID)
    out.print(hash_token(value), highlight=False, soft_wrap=True)


# -- projections: `ilji worker` and `ilji projections ...` ---------------------------------


projections_app = typer.Typer(help="Inspect and operate projections (read models).", no_args_is_help=True)
app.add_typer(projections_app, name="projections")

ProjectionName = Annotated[str, typer.Argument(help="The projection's name.")]


@app.command("worker")
def worker_command(
    projection: Annotated[
        list[str], typer.Option("--projection", "-p", help="module:attribute of a Projection (repeatable).")
    ],
    worker_id: Annotated[str | None, _setting("worker_id")] = None,
    lease_ttl: Annotated[float | None, _setting("lease_ttl")] = None,
    poll_interval: Annotated[float | None, _setting("poll_interval")] = None,
    listen_url: Annotated[str | None, _setting("listen_database_url", "--listen-url")] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Run projections until SIGTERM/SIGINT; several workers share them through leases."""
    settings = _settings(
        database_url=database_url,
        data_dir=data_dir,
        worker_id=worker_id,
        lease_ttl=lease_ttl,
        poll_interval=poll_interval,
        listen_database_url=listen_url,
        log_level=log_level,
        log_format=log_format,
    )
    configure_logging(settings.log_format, settings.log_level)  # a worker logs what it does
    try:
        projections = [p for spec in projection for p in load_projections(spec)]
    except (ImportError, AttributeError, ValidationError) as exc:
        err.print(f"[red]error:[/red] cannot load projections: {exc}")
        raise typer.Exit(EXIT_INVALID) from None

    async def body(runtime: Runtime) -> None:
        worker = Worker(
            runtime.url,
            projections,
            worker_id=settings.worker_id,
            lease_ttl=settings.lease_ttl,
            poll_interval=settings.poll_interval,
            listen_conninfo=settings.listen_database_url,
            pooled=settings.database_pooled,
            read_conninfo=settings.read_database_url,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Replaces _run's cancel-on-signal once running: stop() finishes batches and
            # releases leases, and the worker exits 0 (a clean stop, not an interruption).
            loop.add_signal_handler(sig, lambda: loop.create_task(worker.stop()))
        await worker.run()

    _with_runtime(settings, body, schema="embedded")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, projections_admin.ProjectionStatus):
            data.update(
                state=value.state,
                checkpoint=value.checkpoint,
                events_behind=value.events_behind,
                lag_seconds=value.lag_seconds,
                events_per_second=value.events_per_second,
                parked=value.parked,
                owners=value.owners,
                errors=value.errors,
            )
        return data
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _not_found(exc: ProjectionNotFound) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.message}", highlight=False)
    return typer.Exit(EXIT_NOT_FOUND)


@projections_app.command("status")
def projections_status_command(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Checkpoint, lag, rate, owner, state and parked events of every partition."""
    settings = _settings(database_url=database_url, data_dir=data_dir)

    async def body(runtime: Runtime) -> None:
        try:
            items = await projections_admin.status(runtime.store, name)
        except ProjectionNotFound as exc:
            raise _not_found(exc) from None
        if json_output:
            _print_json(_jsonable(items))
            return
        table = Table(
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
        for st in items:
            for p in [*st.partitions, *st.rebuilding]:
                behind = f"{p.events_behind:,}{'+' if p.events_behind_capped else ''}"
                table.add_row(
                    st.name + ("" if p.active else " (rebuild)"),
                    str(p.version),
                    f"{p.partition}/{p.partitions}",
                    "paused" if st.paused else p.state,
                    str(p.checkpoint),
                    behind,
                    f"{p.lag_seconds:.1f}",
                    f"{p.events_per_second:,.0f}",
                    p.owner or "–",
                    str(p.parked),
                    style="red" if p.state == "failed" else None,
                )
        out.print(table)
        for st in items:
            for w in st.workers:
                runs = ", ".join(f"v{v}" for v in w.versions) or "nothing"
                out.print(
                    f"{st.name}: worker {w.worker} (code version {w.code_version}) {w.state}: runs {runs}",
                    highlight=False,
                )
            for error in st.errors:
                err.print(f"[red]refused:[/red] {error}", highlight=False)

    _with_runtime(settings, body, schema="read")


def _admin_command(action: Callable[[Runtime], Awaitable[str]], settings: Settings) -> None:
    async def body(runtime: Runtime) -> None:
        try:
            out.print(await action(runtime), highlight=False)
        except ProjectionNotFound as exc:
            raise _not_found(exc) from None

    _with_runtime(settings, body)


@projections_app.command("pause")
def projections_pause_command(
    name: ProjectionName, database_url: DatabaseUrl = None, data_dir: DataDir = None
) -> None:
    """Pause a projection (its workers release it within a third of the lease TTL)."""

    async def action(runtime: Runtime) -> str:
        await projections_admin.pause(runtime.store, name, actor=Actor.cli())
        return f"{name}: paused"

    _admin_command(action, _settings(database_url=database_url, data_dir=data_dir))


@projections_app.command("resume")
def projections_resume_command(
    name: ProjectionName, database_url: DatabaseUrl = None, data_dir: DataDir = None
) -> None:
    """Resume a paused projection, and restart partitions stopped by a poison event."""

    async def action(runtime: Runtime) -> str:
        await projections_admin.resume(runtime.store, name, actor=Actor.cli())
        return f"{name}: resumed"

    _admin_command(action, _settings(database_url=database_url, data_dir=data_dir))


@projections_app.command("rebuild")
def projections_rebuild_command(
    name: ProjectionName,
    watch: Annotated[
        bool, typer.Option("--watch/--no-watch", help="Show progress until the cutover.")
    ] = True,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Build the next version from position 0 beside the serving one, then cut over."""
    settings = _settings(database_url=database_url, data_dir=data_dir)

    async def body(runtime: Runtime) -> None:
        try:
            version = await projections_admin.request_rebuild(runtime.store, name, actor=Actor.cli())
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
            async for item in projections_admin.rebuild_progress(runtime.store, name, interval=0.5):
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
    _with_runtime(
        settings,
        body,
        interrupted=f"stopped watching; a rebuild already requested goes on in the workers "
        f"(`ilji projections status {name}`)",
    )


@projections_app.command("parked")
def projections_parked_command(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed events.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """List events projections gave up on (poison events)."""
    settings = _settings(database_url=database_url, data_dir=data_dir)

    async def body(runtime: Runtime) -> None:
        items = await projections_admin.list_parked(runtime.store, name, include_replayed=all_)
        if json_output:
            _print_json(_jsonable(items))
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
                p.replayed_at.isoformat() if p.replayed_at else "–",
            )
        out.print(table)

    _with_runtime(settings, body, schema="read")


@projections_app.command("replay")
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
        err.print("[red]error:[/red] --event-id must be a UUID")
        raise typer.Exit(EXIT_INVALID) from None

    async def action(runtime: Runtime) -> str:
        count = await projections_admin.replay_parked(runtime.store, name, ids, actor=Actor.cli())
        return f"{name}: {count} replay(s) requested"

    _admin_command(action, _settings(database_url=database_url, data_dir=data_dir))


@projections_app.command("wait")
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
            await projections_admin.wait_for_position(runtime.store, name, position, timeout)
        except WaitTimeout as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            raise typer.Exit(EXIT_ERROR) from None
        return f"{name}: reached {position}"

    _admin_command(action, _settings(database_url=database_url, data_dir=data_dir))


# -- stream lifecycle: `ilji streams ...` (docs/en/lifecycle.md) --------------------------


streams_app = typer.Typer(
    help="Soft delete, restore and truncate streams, and set retention per category (audited in $audit).",
    no_args_is_help=True,
)
app.add_typer(streams_app, name="streams")

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
            _print_json(state.as_json())
            return
        hidden = min(state.first_visible_version - 1, state.version)
        status = "deleted" if state.deleted else "live"
        out.print(
            f"{state.stream}: {status}, version {state.version}, {hidden} event(s) hidden "
            f"(first visible version {state.first_visible_version})",
            highlight=False,
        )

    _with_runtime(settings, body, schema=schema)


@streams_app.command("show")
def streams_show_command(
    stream: StreamArgument,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Show a stream's version and what is hidden (soft delete, truncation)."""
    _lifecycle_command(
        _settings(database_url=database_url, data_dir=data_dir),
        json_output,
        lambda rt: rt.store.stream_lifecycle(stream),
        schema="read",
    )


@streams_app.command("delete")
def streams_delete_command(
    stream: StreamArgument,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Soft-delete a stream: readers no longer see it, its events stay stored (see restore)."""
    _lifecycle_command(
        _settings(database_url=database_url, data_dir=data_dir),
        json_output,
        lambda rt: rt.store.delete_stream(stream, actor=Actor.cli()),
    )


@streams_app.command("restore")
def streams_restore_command(
    stream: StreamArgument,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Undo a soft delete: the events it hid are visible again."""
    _lifecycle_command(
        _settings(database_url=database_url, data_dir=data_dir),
        json_output,
        lambda rt: rt.store.restore_stream(stream, actor=Actor.cli()),
    )


@streams_app.command("truncate")
def streams_truncate_command(
    stream: StreamArgument,
    before: Annotated[int, typer.Option("--before", help="Hide versions below this one (1: show all).")],
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Hide a stream's versions below --before from every reader."""
    _lifecycle_command(
        _settings(database_url=database_url, data_dir=data_dir),
        json_output,
        lambda rt: rt.store.truncate_stream(stream, before, actor=Actor.cli()),
    )


@streams_app.command("retention")
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
        problem = ValidationError("--clear", "cannot be combined with --max-age or --max-count")
        raise typer.Exit(_report(problem))
    settings = _settings(database_url=database_url, data_dir=data_dir)
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
            _print_json((rule or Retention(category)).as_json())
            return
        if rule is None:
            out.print(f"{category}: no retention (every event is kept visible)", highlight=False)
            return
        data = rule.as_json()
        out.print(
            f"{category}: max age {data['max_age_seconds'] or '-'} s, max count {data['max_count'] or '-'}",
            highlight=False,
        )

    _with_runtime(settings, body, schema="check" if changes else "read")


@streams_app.command("scavenge")
def streams_scavenge_command(
    batch: Annotated[int, typer.Option("--batch", min=1, max=100_000, help="Rows per transaction.")] = 1000,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Remove the rows the lifecycle rules hide, for good (each stream's newest row stays).

    Connects as the schema's owner (ILJI_MIGRATION_DATABASE_URL, else the database URL): the
    application role may not delete events. Each batch is audited in $audit.
    """
    from ilji.bootstrap import migration_url
    from ilji.store.postgres import PostgresEventStore

    settings = _settings(database_url=database_url, data_dir=data_dir)

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

    _with_runtime(settings, body)


# -- ilji relay: integration events to NATS JetStream (src/ilji/relay, the `relay` extra) ----

relay_app = typer.Typer(help="Publish integration events to NATS JetStream.", no_args_is_help=True)
app.add_typer(relay_app, name="relay")


@relay_app.command("run")
def relay_run_command(
    mapping: Annotated[
        str, typer.Option("--mapping", "-m", help="module:attribute of an IntegrationEvents (or a factory).")
    ],
    nats_url: Annotated[
        str | None, typer.Option("--nats-url", help="NATS URL (env ILJI_RELAY_NATS_URL).", show_default=False)
    ] = None,
    stream: Annotated[
        str | None, typer.Option("--stream", help="JetStream stream (env ILJI_RELAY_STREAM, default ILJI).")
    ] = None,
    create_stream: Annotated[
        bool, typer.Option("--create-stream", help="Create the JetStream stream if it does not exist.")
    ] = False,
    relay_id: Annotated[
        str | None, typer.Option("--relay-id", help="This relay's name (default host:pid:random).")
    ] = None,
    lease_ttl: Annotated[float, typer.Option("--lease-ttl", min=0.5, help="Lease TTL, seconds.")] = 5.0,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="Seconds between polls when idle.")
    ] = 1.0,
    port: Annotated[
        int | None, typer.Option("--port", help="Port of /metrics, /healthz, /readyz (env ILJI_RELAY_PORT).")
    ] = None,
    listen_url: Annotated[
        str | None, typer.Option("--listen-url", help="Direct PostgreSQL URL for LISTEN (behind a pooler).")
    ] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Publish mapped events until SIGTERM/SIGINT; several relays share the work through leases."""
    settings = _settings(database_url=database_url, data_dir=data_dir)
    configure_logging(settings.log_format, settings.log_level)
    try:
        from ilji.relay import Relay, RelayConfig, load_integration
    except ImportError as exc:
        err.print(f"[red]error:[/red] the relay needs its extra: pip install 'ilji\\[relay]' ({exc})")
        raise typer.Exit(EXIT_INVALID) from None
    url = nats_url or settings.relay_nats_url
    if not url:
        err.print("[red]error:[/red] no NATS URL: give --nats-url or set ILJI_RELAY_NATS_URL")
        raise typer.Exit(EXIT_INVALID)
    try:
        integration = load_integration(mapping)
    except IljiError as exc:
        raise typer.Exit(_report(exc)) from None

    async def body(runtime: Runtime) -> None:
        relay = Relay(
            integration,
            RelayConfig(
                database_url=runtime.url,
                nats_url=url,
                jetstream_stream=stream or settings.relay_stream,
                create_stream=create_stream,
                relay_id=relay_id,
                lease_ttl=lease_ttl,
                poll_interval=poll_interval,
                host=settings.host,
                port=settings.relay_port if port is None else port,
                listen_url=listen_url or settings.listen_database_url,
            ),
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: loop.create_task(relay.stop()))
        await relay.run()

    _with_runtime(settings, body, schema="embedded")


@relay_app.command("status")
def relay_status_command(
    name: Annotated[str, typer.Argument(help="The relay's name (IntegrationEvents.name).")] = "relay",
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Checkpoint, lag (events and seconds), owner, state and parked events of each partition."""
    settings = _settings(database_url=database_url, data_dir=data_dir)

    async def body(runtime: Runtime) -> None:
        try:
            (st,) = await projections_admin.status(runtime.store, name)
        except ProjectionNotFound:
            err.print(f"[red]error:[/red] relay {name!r} never ran on this database", highlight=False)
            raise typer.Exit(EXIT_NOT_FOUND) from None
        if json_output:
            _print_json(_jsonable(st))
            return
        table = Table("part", "state", "checkpoint", "behind", "lag s", "owner", "parked", "error")
        for p in st.partitions:
            state = "paused" if st.paused else p.state
            table.add_row(
                f"{p.partition}/{p.partitions}",
                state,
                str(p.checkpoint),
                f"{p.events_behind:,}{'+' if p.events_behind_capped else ''}",
                f"{p.lag_seconds:.1f}",
                p.owner or "–",
                str(p.parked),
                p.error or "",
                style="red" if p.state == "failed" else None,
            )
        out.print(table)
        if st.parked:
            out.print(f"parked: `ilji projections parked {name}`, then `ilji projections replay {name}`")

    _with_runtime(settings, body, schema="read")


def main() -> None:
    """Entry point of the `ilji` console script."""
    with contextlib.suppress(BrokenPipeError):
        app()


if __name__ == "__main__":
    main()
