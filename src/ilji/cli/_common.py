"""What every `ilji` command shares: settings from flags, running a body on the store, errors
as exit codes, and the consoles it prints to.

A command reads its flags, builds `Settings` with `load_settings` (a bad setting is one line,
exit 2), and hands an async body to `on_store`, which opens the store (the embedded PostgreSQL
when no URL is configured), checks or migrates the schema, runs the body and maps what went
wrong to an exit code a script can rely on (docs/en/cli.md).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from pydantic_core import PydanticUndefined
from rich.console import Console

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
)
from ilji.logs import configure_logging
from ilji.settings import Settings, load_settings, setting_name

T = TypeVar("T")


def _console(*, stderr: bool) -> Console:
    # Not a terminal (a pipe, a file, a CI log): never hard-wrap or truncate at 80 columns, so
    # that grep and scripts see each line whole; a terminal keeps rich's folding.
    tty = (sys.stderr if stderr else sys.stdout).isatty()
    return Console(stderr=stderr, soft_wrap=not tty, width=None if tty else 1_000_000)


#: Results (tables, JSON) go to standard output, everything else to standard error.
out = _console(stderr=False)
err = _console(stderr=True)

# Exit codes a script can rely on (docs/en/cli.md). 2: fix the input or the configuration,
# trying again will not help; 5: unavailable, trying again may; 128+N: stopped by signal N.
EXIT_ERROR, EXIT_INVALID, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 1, 2, 3, 4, 5


def setting_option(field: str, *flags: str, **kwargs: Any) -> Any:
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


# Where the store is: every command that opens it takes these two flags.
DatabaseUrl = Annotated[str | None, setting_option("database_url")]
DataDir = Annotated[Path | None, setting_option("data_dir")]
LogLevel = Annotated[str | None, setting_option("log_level")]
LogFormat = Annotated[str | None, setting_option("log_format")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def settings_of(database_url: str | None, data_dir: Path | None, **flags: Any) -> Settings:
    """The settings: the environment, then `--database-url`, `--data-dir` and the other flags
    given (None: not given). A bad one is one line and exit 2."""
    try:
        settings = load_settings(database_url=database_url, data_dir=data_dir, **flags)
    except ConfigurationError as exc:
        raise typer.Exit(report(exc)) from None
    configure_logging(settings.log_format, settings.log_level, quiet=True)
    return settings


def report(exc: IljiError) -> int:
    """Print `exc` as one line on standard error; return its exit code."""
    # One line, whatever the driver's message holds (libpq adds a hint on a second line).
    fail(" ".join(exc.message.split()))
    if isinstance(exc, ValidationError | ConfigurationError | SchemaTooNew):
        return EXIT_INVALID
    if isinstance(exc, ConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, StreamNotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, StoreUnavailable | EmbeddedPostgresError | SchemaError):
        return EXIT_UNAVAILABLE
    return EXIT_ERROR


def fail(message: str) -> None:
    """Print `error: message` on standard error (the caller exits)."""
    err.print(f"[red]error:[/red] {message}", highlight=False)


def invalid(exc: IljiError) -> typer.Exit:
    """`exc` reported; the exit to raise (for input checked before anything runs)."""
    return typer.Exit(report(exc))


#: What an interrupted command left behind, unless it says better.
INTERRUPTED = "stopped before it finished; each change is one transaction, so none is half-done"


def run(main: Callable[[], Coroutine[Any, Any, T]], *, interrupted: str | None = INTERRUPTED) -> T:
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
        raise typer.Exit(report(exc)) from None


def on_store(
    settings: Settings,
    body: Callable[[Runtime], Awaitable[T]],
    *,
    schema: Schema = "check",
    interrupted: str | None = INTERRUPTED,
) -> T:
    """Open the store the settings name (the schema checked, or migrated: see
    `ilji.bootstrap.Schema`), run `body` on it, close it; errors become exit codes (`run`)."""

    async def main() -> T:
        async with open_runtime(settings, schema=schema) as runtime:
            return await body(runtime)

    return run(main, interrupted=interrupted)


def print_json(value: Any) -> None:
    """One JSON document on one line of standard output."""
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()
