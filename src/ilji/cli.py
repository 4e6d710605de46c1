"""The `ilji` command: run, inspect and script the event store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from ilji.bootstrap import Runtime, open_runtime
from ilji.domain.errors import (
    ConflictError,
    EmbeddedPostgresError,
    IljiError,
    SchemaError,
    StoreUnavailable,
    StreamNotFound,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.domain.events import NO_STREAM, NewEvent, RecordedEvent, new_event_id
from ilji.domain.validation import validate_expected_version
from ilji.logs import configure_logging
from ilji.projections import admin as projections_admin
from ilji.projections.errors import ProjectionNotFound, WaitTimeout
from ilji.projections.worker import Worker
from ilji.projections.worker_main import load_projections
from ilji.server.models import event_json
from ilji.settings import Settings, load_settings
from ilji.store.audit import Actor
from ilji.store.lifecycle import Retention, StreamLifecycle
from ilji.store.migrate import latest_version, migrate
from ilji.store.port import Direction

app = typer.Typer(
    name="ilji",
    help="Ilji (일지): an event store for Python on PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

T = TypeVar("T")

# Exit codes a script can rely on.
EXIT_ERROR, EXIT_INVALID, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 1, 2, 3, 4, 5

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL (env ILJI_DATABASE_URL); without one Ilji runs its embedded server.",
        show_default=False,
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Embedded server data directory (env ILJI_DATA_DIR).", show_default=False
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _settings(database_url: str | None, data_dir: Path | None) -> Settings:
    try:
        settings = load_settings(database_url=database_url, data_dir=data_dir)
    except Exception as exc:  # pydantic's message names the setting
        err.print(f"[red]error:[/red] invalid settings: {exc}")
        raise typer.Exit(EXIT_INVALID) from None
    configure_logging(settings.log_format, settings.log_level, quiet=True)
    return settings


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main` on an event loop; SIGINT/SIGTERM cancel it so cleanup runs; map errors."""

    async def wrapper() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await main()

    try:
        return asyncio.run(wrapper())
    except asyncio.CancelledError:
        raise typer.Exit(0) from None
    except IljiError as exc:
        raise typer.Exit(_report(exc)) from None


def _report(exc: IljiError) -> int:
    err.print(f"[red]error:[/red] {exc.message}", highlight=False)
    if isinstance(exc, ValidationError):
        return EXIT_INVALID
    if isinstance(exc, ConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, StreamNotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, StoreUnavailable | EmbeddedPostgresError | SchemaError):
        return EXIT_UNAVAILABLE
    return EXIT_ERROR


def _with_runtime(settings: Settings, body: Callable[[Runtime], Awaitable[T]]) -> T:
    async def main() -> T:
        async with open_runtime(settings) as runtime:
            return await body(runtime)

    return _run(main)


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
    settings = _settings(database_url, data_dir)

    async def main() -> None:
        from ilji.bootstrap import database_url as resolve
        from ilji.bootstrap import migration_url

        url, embedded = await resolve(settings)
        try:
            applied = await migrate(migration_url(settings, url))
        finally:
            if embedded:
                embedded.stop()
        if applied:
            for m in applied:
                out.print(f"applied migration {m.version:04d} {m.name}")
        else:
            out.print(f"schema is up to date (version {latest_version()})")

    _run(main)


@app.command("append")
def append_command(
    stream: Annotated[str, typer.Argument(help="Stream name, like order-42.")],
    event_type: Annotated[str, typer.Option("--type", "-t", help="Event type, like OrderPlaced.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Event data as a JSON object.")] = "{}",
    metadata: Annotated[str, typer.Option("--metadata", "-m", help="Metadata JSON object.")] = "{}",
    event_id: Annotated[
        str | None, typer.Option("--id", help="Event id (UUID) to make retries idempotent.")
    ] = None,
    expected_version: Annotated[
        str, typer.Option("--expected-version", "-e", help="A version, any, no_stream or exists.")
    ] = "any",
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Append one event to a stream."""
    settings = _settings(database_url, data_dir)
    try:
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


@app.command("read")
def read_command(
    stream: Annotated[str, typer.Argument(help="Stream name.")],
    from_version: Annotated[int | None, typer.Option("--from-version", min=0)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    backward: Annotated[bool, typer.Option("--backward", help="Newest first.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print a stream's events."""
    settings = _settings(database_url, data_dir)

    async def body(runtime: Runtime) -> None:
        direction: Direction = "backward" if backward else "forward"
        reader = runtime.store.reader  # a hot standby when ILJI_READ_DATABASE_URL is set
        events = await reader.read_stream(stream, from_version, limit, direction)
        if not events:
            (await reader.stream_lifecycle(stream)).check_readable()
        if json_output:
            _print_json({"stream": stream, "events": [event_json(e) for e in events]})
        else:
            out.print(_events_table(f"stream {stream}", events))

    _with_runtime(settings, body)


@app.command("tail")
def tail_command(
    category: Annotated[str | None, typer.Option("--category", "-c", help="Only this category.")] = None,
    after: Annotated[int, typer.Option("--after", min=0, help="Start after this position.")] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print the global log (or one category); with --follow, live until interrupted."""
    settings = _settings(database_url, data_dir)

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
        if category:
            events = await store.read_category(category, after, limit)
        else:
            events = await store.read_all(after, limit)
        nxt = events[-1].position if events else after
        if json_output:
            _print_json({"events": [event_json(e) for e in events], "next": nxt})
        else:
            out.print(_events_table(f"{'category ' + category if category else '$all'}", events))
            out.print(f"next: --after {nxt}", highlight=False)

    _with_runtime(settings, body)


@app.command("info")
def info_command(
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Show where the store is and what it holds."""
    settings = _settings(database_url, data_dir)

    async def body(runtime: Runtime) -> None:
        info = await runtime.store.info()
        oldest = await runtime.store.oldest_transaction_age()
        data = {
            "database": info.database,
            "server_version": info.server_version,
            "embedded_data_dir": str(runtime.embedded.data_dir) if runtime.embedded else None,
            "schema_version": latest_version(),
            "streams": info.streams,
            "events": info.events,
            "last_position": info.last_position,
            "oldest_open_transaction_seconds": round(oldest, 3),
        }
        if json_output:
            _print_json(data)
            return
        table = Table(show_header=False, title="Ilji", title_justify="left")
        for key, value in data.items():
            table.add_row(key.replace("_", " "), "-" if value is None else str(value))
        out.print(table)

    _with_runtime(settings, body)


@app.command("quickstart")
def quickstart_command(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """A guided tour: append events, read them back, and see optimistic concurrency at work."""
    settings = _settings(database_url, data_dir)

    async def body(runtime: Runtime) -> None:
        store = runtime.store
        stream = f"cart-{uuid.uuid4().hex[:8]}"
        where = (
            f"the embedded PostgreSQL in {runtime.embedded.data_dir}"
            if runtime.embedded
            else "the PostgreSQL at ILJI_DATABASE_URL"
        )
        out.rule("Ilji quickstart")
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
        out.print("Try it yourself:")
        out.print(f"   .venv/bin/ilji read {stream}")
        out.print("   .venv/bin/ilji tail --follow   (and append from another terminal)")

    _with_runtime(settings, body)


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
    settings = _settings(database_url, data_dir)
    try:
        module = importlib.import_module(f"examples.{name}.demo")
    except ImportError as exc:
        err.print(f"[red]error:[/red] the example domains are not installed ({exc}); run `make run` first")
        raise typer.Exit(EXIT_ERROR) from None

    async def body(runtime: Runtime) -> None:
        await module.run_demo(runtime.store, lambda line: out.print(line, markup=False, highlight=False))

    _with_runtime(settings, body)


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (env ILJI_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (env ILJI_PORT, default 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes (env ILJI_WORKERS).")
    ] = None,
    example: Annotated[
        list[str] | None,
        typer.Option("--example", help="Also serve an example domain's routes: conference, ships, orders."),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert", help="PEM certificate: serve HTTPS (env ILJI_TLS_CERT).", show_default=False
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key", help="PEM private key of --tls-cert (env ILJI_TLS_KEY).", show_default=False
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Run the HTTP server (API v1, SSE, /healthz, /readyz, /metrics) until SIGTERM."""
    for name in example or []:
        if name not in DEMOS:
            err.print(f"[red]error:[/red] --example: choose from {', '.join(DEMOS)}, not {name!r}")
            raise typer.Exit(EXIT_INVALID)
    from ilji.server.run import serve  # the server's dependencies load only for this command

    try:
        settings = load_settings(
            database_url=database_url,
            data_dir=data_dir,
            host=host,
            port=port,
            workers=workers,
            examples=tuple(example) if example else None,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
    except Exception as exc:  # pydantic's message names the setting
        err.print(f"[red]error:[/red] invalid settings: {exc}")
        raise typer.Exit(EXIT_INVALID) from None
    try:
        serve(settings)
    except IljiError as exc:
        raise typer.Exit(_report(exc)) from None


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

    settings = _settings(database_url, data_dir)
    schema = None if no_read_models else (read_models or role)

    async def main() -> None:
        url, embedded = await resolve(settings)
        try:
            owner_url = migration_url(settings, url)
            await migrate(owner_url)
            granted = await grant_app_role(owner_url, role, read_models=schema)
        finally:
            if embedded:
                embedded.stop()
        table = Table(title=f"privileges of {role} in schema ilji", title_justify="left")
        table.add_column("table")
        table.add_column("privileges")
        for item in granted:
            table.add_row(item.table, item.privileges)
        out.print(table)
        if schema:
            out.print(f"read models: {role} may create tables in schema {schema}")

    _run(main)


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
    worker_id: Annotated[
        str | None,
        typer.Option(
            "--worker-id", help="This worker's name (default host:pid:random; in Kubernetes, the pod name)."
        ),
    ] = None,
    lease_ttl: Annotated[
        float, typer.Option("--lease-ttl", min=0.5, help="Lease time-to-live, seconds.")
    ] = 5.0,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="Seconds between polls when idle.")
    ] = 1.0,
    listen_url: Annotated[
        str | None, typer.Option("--listen-url", help="Direct PostgreSQL URL for LISTEN (behind a pooler).")
    ] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Run projections until SIGTERM/SIGINT; several workers share them through leases."""
    settings = _settings(database_url, data_dir)
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
            worker_id=worker_id,
            lease_ttl=lease_ttl,
            poll_interval=poll_interval,
            listen_conninfo=listen_url or settings.listen_database_url,
            pooled=settings.database_pooled,
            read_conninfo=settings.read_database_url,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Replaces _run's cancel-on-signal: stop() finishes batches and releases leases.
            loop.add_signal_handler(sig, lambda: loop.create_task(worker.stop()))
        await worker.run()

    _with_runtime(settings, body)


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
    settings = _settings(database_url, data_dir)

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

    _with_runtime(settings, body)


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

    _admin_command(action, _settings(database_url, data_dir))


@projections_app.command("resume")
def projections_resume_command(
    name: ProjectionName, database_url: DatabaseUrl = None, data_dir: DataDir = None
) -> None:
    """Resume a paused projection, and restart partitions stopped by a poison event."""

    async def action(runtime: Runtime) -> str:
        await projections_admin.resume(runtime.store, name, actor=Actor.cli())
        return f"{name}: resumed"

    _admin_command(action, _settings(database_url, data_dir))


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
    settings = _settings(database_url, data_dir)

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

    _with_runtime(settings, body)


@projections_app.command("parked")
def projections_parked_command(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed events.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """List events projections gave up on (poison events)."""
    settings = _settings(database_url, data_dir)

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

    _with_runtime(settings, body)


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

    _admin_command(action, _settings(database_url, data_dir))


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

    _admin_command(action, _settings(database_url, data_dir))


# -- stream lifecycle: `ilji streams ...` (docs/en/lifecycle.md) --------------------------


streams_app = typer.Typer(
    help="Soft delete, restore and truncate streams, and set retention per category (audited in $audit).",
    no_args_is_help=True,
)
app.add_typer(streams_app, name="streams")

StreamArgument = Annotated[str, typer.Argument(help="Stream name, like order-42.")]


def _lifecycle_command(
    settings: Settings, json_output: bool, action: Callable[[Runtime], Awaitable[StreamLifecycle]]
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

    _with_runtime(settings, body)


@streams_app.command("show")
def streams_show_command(
    stream: StreamArgument,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Show a stream's version and what is hidden (soft delete, truncation)."""
    _lifecycle_command(
        _settings(database_url, data_dir), json_output, lambda rt: rt.store.stream_lifecycle(stream)
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
        _settings(database_url, data_dir),
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
        _settings(database_url, data_dir),
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
        _settings(database_url, data_dir),
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
    settings = _settings(database_url, data_dir)

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

    _with_runtime(settings, body)


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

    settings = _settings(database_url, data_dir)

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


def main() -> None:
    """Entry point of the `ilji` console script."""
    with contextlib.suppress(BrokenPipeError):
        app()


if __name__ == "__main__":
    main()
