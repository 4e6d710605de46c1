"""`ilji serve`: the HTTP server, in the foreground until SIGTERM.

The server and uvicorn are imported inside the command: they come with the `server` extra,
and every other command works without them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from ilji.bootstrap import database_or_embedded, prepare_schema
from ilji.cli._common import (
    DatabaseUrl,
    DataDir,
    LogFormat,
    LogLevel,
    invalid,
    report,
    run,
    setting_option,
    settings_of,
)
from ilji.domain.errors import IljiError
from ilji.embedded import EmbeddedPostgres
from ilji.logs import configure_logging


def serve_command(
    host: Annotated[str | None, setting_option("host")] = None,
    port: Annotated[int | None, setting_option("port")] = None,
    workers: Annotated[int | None, setting_option("workers")] = None,
    example: Annotated[list[str] | None, setting_option("examples", "--example")] = None,
    tls_cert: Annotated[Path | None, setting_option("tls_cert")] = None,
    tls_key: Annotated[Path | None, setting_option("tls_key")] = None,
    allowed_hosts: Annotated[str | None, setting_option("allowed_hosts")] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Run the HTTP server (API v1, SSE, /healthz, /readyz, /metrics) until SIGTERM."""
    # What can be checked without starting anything first (the port is free, TLS files load,
    # tokens and rates parse), then the database (the embedded one is started and migrated; a
    # configured one must be migrated already: `ilji migrate`), then uvicorn.
    from ilji.server.run import preflight, serve  # the server extra

    settings = settings_of(
        database_url,
        data_dir,
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
        raise invalid(exc) from None
    configure_logging(settings.log_format, settings.log_level)

    async def prepare() -> tuple[str, EmbeddedPostgres | None]:
        # Before uvicorn starts: a wrong password or a closed port is one line here, a wait
        # for the migration lock is said, and Ctrl-C stops it at once.
        url, embedded = await database_or_embedded(settings)
        try:
            await prepare_schema(settings, url, embedded is not None, "embedded")
        except BaseException:
            if embedded:
                await asyncio.to_thread(embedded.stop)
            raise
        return url, embedded

    url, embedded = run(prepare, interrupted="stopped before serving")
    try:
        # This process keeps the embedded server's handle while it serves; the app connects to it.
        serve(settings.model_copy(update={"database_url": url}) if embedded else settings)
    except IljiError as exc:
        raise typer.Exit(report(exc)) from None
    finally:
        if embedded:
            embedded.stop()
