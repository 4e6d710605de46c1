"""`ilji relay ...`: publish integration events to NATS JetStream (src/ilji/relay, the `relay` extra)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from ilji.bootstrap import Runtime
from ilji.cli._common import (
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    DatabaseUrl,
    DataDir,
    JsonOutput,
    fail,
    invalid,
    on_store,
    out,
    print_json,
    settings_of,
)
from ilji.cli._output import partitions_table
from ilji.domain.errors import IljiError
from ilji.logs import configure_logging
from ilji.projections import ProjectionNotFound, status
from ilji.projections.shapes import projection_json

#: `ilji relay ...`.
relay_commands = typer.Typer(help="Publish integration events to NATS JetStream.", no_args_is_help=True)

#: The columns of `ilji relay status` (see `ilji.cli._output.PARTITION_COLUMNS`).
STATUS_COLUMNS = ("part", "state", "checkpoint", "behind", "lag s", "owner", "parked", "error")


@relay_commands.command("run")
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
    settings = settings_of(database_url, data_dir)
    configure_logging(settings.log_format, settings.log_level)
    from ilji.relay import Relay, RelayConfig, load_integration  # the relay extra

    url = nats_url or settings.relay_nats_url
    if not url:
        fail("no NATS URL: give --nats-url or set ILJI_RELAY_NATS_URL")
        raise typer.Exit(EXIT_INVALID)
    try:
        integration = load_integration(mapping)
    except IljiError as exc:
        raise invalid(exc) from None

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

    on_store(settings, body, schema="embedded")


@relay_commands.command("status")
def relay_status_command(
    name: Annotated[str, typer.Argument(help="The relay's name (IntegrationEvents.name).")] = "relay",
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Checkpoint, lag (events and seconds), owner, state and parked events of each partition."""

    async def body(runtime: Runtime) -> None:
        try:
            (st,) = await status(runtime.store, name)
        except ProjectionNotFound:
            fail(f"relay {name!r} never ran on this database")
            raise typer.Exit(EXIT_NOT_FOUND) from None
        if json_output:
            print_json(projection_json(st))
            return
        out.print(partitions_table(STATUS_COLUMNS, [(st, p) for p in st.partitions]))
        if st.parked:
            out.print(f"parked: `ilji projections parked {name}`, then `ilji projections replay {name}`")

    on_store(settings_of(database_url, data_dir), body, schema="read")
