"""The relay process: a projections `Worker` running the relay projection, a NATS connection,
a status loop and the HTTP endpoint for probes and metrics.

Start as many relays as you like against one database: the leases of the relay's partitions
decide which one publishes what, exactly as for projection workers, and a standby takes over a
partition when its owner dies (after the lease TTL) or stops (at once). SIGTERM (`stop()`)
finishes the batch being published, stores its checkpoint and releases the leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from ilji.domain.errors import ValidationError
from ilji.projections import ProjectionNotFound, Worker, store_options
from ilji.projections import status as projection_status
from ilji.relay.broker import Broker
from ilji.relay.mapping import IntegrationEvents
from ilji.relay.metrics import RelayMetrics, serve_http
from ilji.relay.projection import relay_projection
from ilji.store.postgres import PostgresEventStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """How to run a relay (the CLI fills this from its flags and `ILJI_*` settings)."""

    database_url: str
    #: NATS URL; credentials may be part of it (`nats://user:password@host:4222`).
    nats_url: str
    #: The JetStream stream the subjects must land in (sent as the expected stream).
    jetstream_stream: str = "ILJI"
    #: Create the JetStream stream (for `<prefix>.>`) if it does not exist.
    create_stream: bool = False
    #: Duplicate window of a stream the relay creates, in seconds (JetStream's default: 120).
    duplicate_window: float = 120.0
    relay_id: str | None = None
    lease_ttl: float = 5.0
    poll_interval: float = 1.0
    #: How long to wait for JetStream's acknowledgement of one message.
    ack_timeout: float = 2.0
    #: Where `/metrics`, `/healthz` and `/readyz` are served (port None: not at all; 0: any).
    host: str = "127.0.0.1"
    port: int | None = 9108
    #: Seconds between refreshes of lag and parked counts (metrics, `/readyz`).
    status_interval: float = 5.0
    listen_url: str | None = None


class Relay:
    """Publishes `integration`'s events to JetStream until `stop()`; see the module docstring."""

    def __init__(self, integration: IntegrationEvents, config: RelayConfig) -> None:
        self.integration = integration
        self.config = config
        self.metrics = RelayMetrics(integration.name)
        self.broker = Broker(
            config.nats_url,
            name=f"ilji-relay-{integration.name}",
            ack_timeout=min(config.ack_timeout, config.lease_ttl),
        )
        self.projection = relay_projection(
            integration,
            self.broker,
            config.jetstream_stream,
            metrics=self.metrics,
            # Short of the lease TTL: the runner's transaction is open while apply() waits.
            connect_wait=min(1.0, config.lease_ttl / 3),
        )
        #: The projections worker publishing the events (created by `run`, on its store).
        self.worker: Worker | None = None
        #: The port `/metrics` is served on once running (useful with port 0).
        self.port: int | None = None
        self._stopping = asyncio.Event()
        self._status: dict[str, Any] = {}
        self._status_ok = False

    async def stop(self) -> None:
        """Finish the batch being published, release the leases, close the connection."""
        self._stopping.set()
        if self.worker is not None:
            await self.worker.stop()

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready when connected to NATS and the database answered the last status query."""
        details = {
            "relay": self.integration.name,
            "broker_connected": self.broker.connected,
            "broker_error": self.broker.last_error,
            "database": "ok" if self._status_ok else "unavailable",
            **self._status,
        }
        return self.broker.connected and self._status_ok, details

    async def run(self) -> None:
        """Run until `stop()`."""
        config = self.config
        store = await PostgresEventStore.open(
            config.database_url,
            **store_options([self.projection], lease_ttl=config.lease_ttl),
            listen_conninfo=config.listen_url,
        )
        worker = self.worker = Worker(
            store,
            [self.projection],
            worker_id=config.relay_id,
            lease_ttl=config.lease_ttl,
            poll_interval=config.poll_interval,
        )
        server: asyncio.Server | None = None
        try:
            if config.port is not None:
                server = await serve_http(config.host, config.port, self.metrics, self.ready)
                self.port = server.sockets[0].getsockname()[1]
            async with asyncio.TaskGroup() as group:
                group.create_task(self.broker.run(), name="nats connection")
                status = group.create_task(self._status_loop(store), name="relay status")
                try:
                    if config.create_stream:
                        await self._ensure_stream()
                    if not self._stopping.is_set():
                        log.info(
                            "relay starting",
                            extra={
                                "relay": self.integration.name,
                                "stream": config.jetstream_stream,
                                "types": self.integration.source_types,
                            },
                        )
                        await worker.run()
                finally:
                    await self.broker.stop()
                    status.cancel()
        finally:
            if server is not None:
                server.close()
                await server.wait_closed()
            await store.close()
            log.info("relay stopped", extra={"relay": self.integration.name})

    async def _ensure_stream(self) -> None:
        """Create the JetStream stream, retrying (with backoff) while the broker is away."""
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                await self.broker.ensure_stream(
                    self.config.jetstream_stream,
                    [f"{self.integration.subject_prefix}.>"],
                    self.config.duplicate_window,
                )
                return
            except ConnectionError as exc:  # BrokerUnavailable
                log.warning("cannot create the JetStream stream yet", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, 5.0)

    async def _status_loop(self, store: PostgresEventStore) -> None:
        while True:
            self.metrics.broker_connected.set(1 if self.broker.connected else 0)
            try:
                items = await projection_status(store, self.integration.name)
            except ProjectionNotFound:
                items = []  # not registered yet: the worker does that first thing
                self._status_ok = True
            except Exception as exc:
                self._status_ok = False
                log.warning("relay status query failed", extra={"error": str(exc)})
                items = []
            else:
                self._status_ok = True
            for item in items:
                self.metrics.lag_events.set(item.events_behind)
                self.metrics.lag_seconds.set(item.lag_seconds)
                self.metrics.parked.set(item.parked)
                self.metrics.checkpoint.set(item.checkpoint)
                self.metrics.status_timestamp.set(time.time())
                self._status = {
                    "state": item.state,
                    "checkpoint": item.checkpoint,
                    "lag_events": item.events_behind,
                    "lag_seconds": round(item.lag_seconds, 3),
                    "parked": item.parked,
                    "owners": item.owners,
                }
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.status_interval)
            if self._stopping.is_set():
                return


def load_integration(spec: str) -> IntegrationEvents:
    """Import `module:attribute`: an `IntegrationEvents`, or a function that returns one."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValidationError("mapping", f"{spec!r}: use module:attribute")
    try:
        target: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValidationError("mapping", f"cannot load {spec!r}: {exc}") from None
    if callable(target) and not isinstance(target, IntegrationEvents):
        try:
            target = target()
        except TypeError as exc:  # a function that is not a factory (it wants arguments)
            raise ValidationError("mapping", f"{spec!r} is not an IntegrationEvents factory: {exc}") from None
    if not isinstance(target, IntegrationEvents):
        raise ValidationError("mapping", f"{spec!r} is not an IntegrationEvents or a factory of one")
    return target
