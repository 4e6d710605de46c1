"""`ilji quickstart` and `ilji demo`: guided tours for a first hour with Ilji."""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from ilji import examples
from ilji.bootstrap import Runtime
from ilji.cli._common import EXIT_ERROR, EXIT_INVALID, DatabaseUrl, DataDir, fail, on_store, out, settings_of
from ilji.cli._output import events_table
from ilji.domain.errors import WrongExpectedVersion
from ilji.domain.events import NO_STREAM, NewEvent

#: The example domains `ilji demo` walks through.


def command_name() -> str:
    """How the user runs `ilji`: its name when it is on PATH, else the path they typed."""
    typed = sys.argv[0]
    found = shutil.which("ilji")
    if found and Path(found).resolve() == Path(typed).resolve():
        return "ilji"
    if Path(typed).name == "ilji" and Path(typed).exists():
        return typed
    return "ilji" if found else f"{Path(sys.executable).name} -m ilji.cli"


def quickstart_command(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """A guided tour: append events, read them back, and see optimistic concurrency at work."""

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
        out.print(events_table(stream, await store.read_stream(stream)))
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
        command = command_name()
        out.print("Try it yourself:")
        out.print(f"   {command} read {stream}", highlight=False)
        out.print(f"   {command} tail --follow   (and append from another terminal)", highlight=False)

    on_store(settings_of(database_url, data_dir), body, schema="embedded")


def _demo(name: str) -> ModuleType:
    """The demo module of example domain `name`: the one place the CLI imports the examples."""
    try:
        return examples.load(name, "demo")
    except ImportError as exc:
        fail(f"the example domains are not installed ({exc}); reinstall Ilji")
        raise typer.Exit(EXIT_ERROR) from None


def demo_command(
    name: Annotated[str, typer.Argument(help="conference, ships or orders.", show_default=False)],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Walk through one of the example domains step by step, explaining what happens."""
    if name not in examples.NAMES:
        fail(f"demo: choose one of {examples.choices()}, not {name!r}")
        raise typer.Exit(EXIT_INVALID)
    settings = settings_of(database_url, data_dir)
    module = _demo(name)

    async def body(runtime: Runtime) -> None:
        await module.run_demo(runtime.store, lambda line: out.print(line, markup=False, highlight=False))

    on_store(settings, body, schema="embedded")
