"""The relay's Prometheus metrics and its small HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).

Counters move as the relay publishes. Lag and parked events need database queries, and a
scrape must not wait on the database, so the relay's status loop refreshes them every few
seconds from `ilji.projections.status` (the same numbers `ilji relay status` prints), and
`ilji_relay_status_timestamp_seconds` says how fresh they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

# From a loopback broker (milliseconds) to a backlog after an outage (minutes).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class RelayMetrics:
    """The relay's metrics in a registry of their own (tests run several relays in one process)."""

    def __init__(self, relay: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        labels = ["relay"]
        self.relay = relay
        self.published = Counter(
            "ilji_relay_published", "events JetStream stored (not duplicates)", labels, registry=r
        ).labels(relay)
        self.duplicates = Counter(
            "ilji_relay_duplicates", "republished events JetStream recognised by their id", labels, registry=r
        ).labels(relay)
        self.skipped = Counter(
            "ilji_relay_skipped", "read events whose mapping published nothing", labels, registry=r
        ).labels(relay)
        errors = Counter("ilji_relay_publish_errors", "failed publishes", [*labels, "kind"], registry=r)
        self.unavailable = errors.labels(relay, "unavailable")
        self.rejected = errors.labels(relay, "rejected")
        self.latency = Histogram(
            "ilji_relay_ack_latency_seconds",
            "from an event's recording to JetStream's acknowledgement",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ).labels(relay)
        self.broker_connected = Gauge(
            "ilji_relay_broker_connected", "1 while connected to NATS", labels, registry=r
        ).labels(relay)
        self.lag_events = Gauge(
            "ilji_relay_lag_events", "events not published yet (most behind partition)", labels, registry=r
        ).labels(relay)
        self.lag_seconds = Gauge(
            "ilji_relay_lag_seconds", "age of the oldest event not published yet", labels, registry=r
        ).labels(relay)
        self.parked = Gauge(
            "ilji_relay_parked", "events parked (refused by JetStream), not replayed yet", labels, registry=r
        ).labels(relay)
        self.checkpoint = Gauge(
            "ilji_relay_checkpoint", "lowest checkpoint of the relay's partitions", labels, registry=r
        ).labels(relay)
        self.status_timestamp = Gauge(
            "ilji_relay_status_timestamp_seconds", "when lag and parked were last read", labels, registry=r
        ).labels(relay)

    def render(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)


Probe = Callable[[], tuple[bool, dict[str, Any]]]


async def serve_http(host: str, port: int, metrics: RelayMetrics, ready: Probe) -> asyncio.Server:
    """Serve `/metrics`, `/healthz` (the process answers) and `/readyz` (`ready()`), GET only.

    A few lines of asyncio rather than a web framework: the relay sits below the server layer
    and answers three fixed paths to Prometheus and the kubelet.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5.0)
            # Read (and ignore) the headers, so the client sees its request consumed.
            while await asyncio.wait_for(reader.readline(), 5.0) not in (b"\r\n", b"\n", b""):
                continue
            parts = request.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
            if method not in ("GET", "HEAD"):
                status, body, kind = 405, b"method not allowed\n", "text/plain"
            elif path == "/metrics":
                status, body, kind = 200, metrics.render(), CONTENT_TYPE_LATEST
            elif path == "/healthz":
                status, body, kind = 200, b'{"status":"ok"}', "application/json"
            elif path == "/readyz":
                ok, details = ready()
                status, kind = (200 if ok else 503), "application/json"
                body = orjson.dumps({"status": "ready" if ok else "not ready", **details})
            else:
                status, body, kind = 404, b"not found\n", "text/plain"
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
            head = (
                f"HTTP/1.1 {status} {reason[status]}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            writer.write(head + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError) as exc:
            log.debug("bad metrics request", extra={"error": str(exc)})
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)
