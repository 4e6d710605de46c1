"""`ilji token new` and `ilji token hash`: API tokens for the server's ILJI_API_TOKENS.

The hashing is the server's own (`ilji.server.auth`), imported inside each command so that
the rest of the `ilji` command works without the server extra.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ilji.cli._common import EXIT_INVALID, JsonOutput, err, fail, out, print_json

#: `ilji token ...`: API tokens.
token_commands = typer.Typer(help="API tokens for ILJI_API_TOKENS.", no_args_is_help=True)


@token_commands.command("new")
def token_new_command(
    role: Annotated[str, typer.Option("--role", help="read, write or admin.")] = "read",
    as_json: JsonOutput = False,
) -> None:
    """Make a random token; print it once, with the hashed entry for ILJI_API_TOKENS."""
    from ilji.server.auth import Role, hash_token, new_token  # the server extra

    if role.upper() not in Role.__members__:
        fail(f"--role: choose read, write or admin, not {role!r}")
        raise typer.Exit(EXIT_INVALID)
    token = new_token()
    entry = f"{hash_token(token)}={role.lower()}"
    if as_json:
        print_json({"token": token, "entry": entry, "role": role.lower()})
        return
    out.print(f"token: {token}", highlight=False, soft_wrap=True)
    out.print(f"entry: {entry}", highlight=False, soft_wrap=True)
    err.print("Give the token to its client; put only the entry in ILJI_API_TOKENS.")


@token_commands.command("hash")
def token_hash_command(
    token: Annotated[
        str | None,
        typer.Argument(help="The token (default: read from stdin, which keeps it out of shell history)."),
    ] = None,
) -> None:
    """Print the `sha256:...` form of a token, which ILJI_API_TOKENS accepts in its place."""
    from ilji.server.auth import hash_token  # the server extra

    value = (token if token is not None else sys.stdin.readline()).strip()
    if not value:
        fail("no token given")
        raise typer.Exit(EXIT_INVALID)
    out.print(hash_token(value), highlight=False, soft_wrap=True)
