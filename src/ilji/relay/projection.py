"""The relay as a projection whose "read model" is a JetStream stream.

Everything that makes a projection safe is reused as is (`ilji.projections`): leases with
fencing tokens (one publisher per partition), the checkpoint in PostgreSQL, retries with
backoff, parking of poison events and their replay. What differs is `apply`: it publishes
the batch's mapped events and returns only once JetStream acknowledged every one of them,
and the runner advances the checkpoint only after `apply` returned. So:

- a crash after an acknowledgement but before the checkpoint commit republishes those
  events; each carries its event id as `Nats-Msg-Id`, so JetStream drops the copy (within its
  duplicate window): exactly once into the stream;
- a crash before the acknowledgement republishes them too: nothing is lost.

Order: the events of one stream are published one after the other, each after the previous
one's acknowledgement, so a stream's events are stored in its order even when a publish fails
halfway; different streams of a batch are published concurrently (their relative order is
not a promise: partitions already interleave them).

The relay's transaction stays read-only until the checkpoint update, so waiting for the
broker holds no transaction id (which would hold back the global log's visible bound). It is
open, though, and PostgreSQL ends a transaction idle for twice the lease TTL: a batch must be
published within that time, which is why the default batch (200) is smaller than a
projection's and why an acknowledgement waits at most the lease TTL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from nats.js import JetStreamContext

from ilji.domain.events import RecordedEvent
from ilji.projections import Connection, Context, Projection
from ilji.relay.broker import Broker
from ilji.relay.errors import BrokerUnavailable
from ilji.relay.mapping import IntegrationEvents, OutgoingMessage
from ilji.relay.metrics import RelayMetrics

log = logging.getLogger(__name__)


class RelayProjection(Projection):
    """Publishes mapped events to JetStream; build one with `relay_projection`."""

    integration: ClassVar[IntegrationEvents]
    broker: ClassVar[Broker]
    jetstream_stream: ClassVar[str]
    metrics: ClassVar[RelayMetrics]
    #: Longest wait for a lost connection inside one attempt (less than the lease TTL, so the
    #: runner's transaction is never idle long enough for PostgreSQL to end it).
    connect_wait: ClassVar[float] = 1.0

    async def apply(self, conn: Connection, events: Sequence[RecordedEvent], ctx: Context) -> None:
        """Publish the batch's mapped events; return once JetStream acknowledged all of them."""
        by_stream: dict[str, list[OutgoingMessage]] = {}
        for event in events:
            message = self.integration.to_message(event)
            if message is None:
                self.metrics.skipped.inc()
                continue
            by_stream.setdefault(message.stream, []).append(message)
        if not by_stream:
            return
        try:
            js = await self.broker.wait_connected(self.connect_wait)
        except BrokerUnavailable as exc:
            self.metrics.unavailable.inc()
            log.warning(
                "NATS unavailable, the batch will be retried", extra={"relay": self.name, "error": str(exc)}
            )
            raise
        results = await asyncio.gather(
            *(self._publish_in_order(js, messages) for messages in by_stream.values()),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if not failures:
            return
        # A broker outage outranks a refused message: the runner retries the whole batch
        # later instead of counting an attempt against an event that did nothing wrong.
        unavailable = [f for f in failures if isinstance(f, BrokerUnavailable)]
        self.metrics.unavailable.inc(len(unavailable))
        self.metrics.rejected.inc(len(failures) - len(unavailable))
        if unavailable:
            log.warning(
                "NATS unavailable, the batch will be retried",
                extra={"relay": self.name, "error": str(unavailable[0])},
            )
        raise unavailable[0] if unavailable else failures[0]

    async def _publish_in_order(self, js: JetStreamContext, messages: list[OutgoingMessage]) -> None:
        for message in messages:
            duplicate = await self.broker.publish(js, message, self.jetstream_stream)
            if duplicate:
                self.metrics.duplicates.inc()
            else:
                self.metrics.published.inc()
                self.metrics.latency.observe(max(time.time() - message.recorded_at, 0.0))


def relay_projection(
    integration: IntegrationEvents,
    broker: Broker,
    jetstream_stream: str,
    *,
    metrics: RelayMetrics | None = None,
    connect_wait: float = 1.0,
) -> RelayProjection:
    """The projection that publishes `integration`'s events through `broker` into `jetstream_stream`."""
    categories = integration.categories
    attributes: dict[str, Any] = {
        "name": integration.name,
        "partitions": integration.partitions,
        "batch_size": integration.batch_size,
        # One category: the runner reads only it. Several: the whole log, filtered by mapping.
        "category": categories[0] if categories is not None and len(categories) == 1 else None,
        "types": integration.source_types,
        "integration": integration,
        "broker": broker,
        "jetstream_stream": jetstream_stream,
        "metrics": metrics or RelayMetrics(integration.name),
        "connect_wait": connect_wait,
    }
    cls = type(f"RelayProjection_{integration.name}", (RelayProjection,), attributes)
    projection: RelayProjection = cls()
    return projection
