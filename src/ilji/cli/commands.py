"""The `ilji` command as a typer application: every command, in the order `ilji --help` lists them.

The commands live in one module per group (`ilji.cli` lists them); this module only puts
them together, so the whole command line can be read here at a glance.
"""

from __future__ import annotations

from typing import Annotated

import typer

import ilji
from ilji.cli import database, projections, relay, serve, store, streams, tokens, tour, worker
from ilji.cli._common import out

#: Help as `-h` too, on every command (sub-commands inherit it).
HELP = {"help_option_names": ["-h", "--help"]}

#: The `ilji` command.
ilji_command = typer.Typer(
    name="ilji",
    help="Ilji (일지): an event store for Python on PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=HELP,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"ilji {ilji.__version__}", highlight=False)
        raise typer.Exit()


@ilji_command.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print Ilji's version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    """Ilji (일지): an event store for Python on PostgreSQL."""


ilji_command.command("migrate")(database.migrate_command)
ilji_command.command("append")(store.append_command)
ilji_command.command("read")(store.read_command)
ilji_command.command("tail")(store.tail_command)
ilji_command.command("info")(store.info_command)
ilji_command.command("quickstart")(tour.quickstart_command)
ilji_command.command("demo")(tour.demo_command)
ilji_command.command("serve")(serve.serve_command)
ilji_command.command("worker")(worker.worker_command)
ilji_command.add_typer(database.db_commands, name="db")
ilji_command.add_typer(tokens.token_commands, name="token")
ilji_command.add_typer(projections.projections_commands, name="projections")
ilji_command.add_typer(streams.streams_commands, name="streams")
ilji_command.add_typer(relay.relay_commands, name="relay")
