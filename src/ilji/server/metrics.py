"""Prometheus metrics of one server app, in the app's own registry (so tests can run many apps).

Request counts and latencies come from an ASGI middleware that labels each request with its
route template (never the raw path: stream names would make the label set unbounded). Pool
usage is read from psycopg's pool statistics when Prometheus scrapes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("ilji.server.access")

PoolGetter = Callable[[], "AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None"]

# psycopg_pool statistics: levels are gauges, running totals are counters.
_POOL_GAUGES = {
    "pool_min": "configured minimum connections",
    "pool_max": "configured maximum connections",
    "pool_size": "connections open or being opened",
    "pool_available": "idle connections ready for a request",
    "requests_waiting": "requests waiting for a connection now",
}
_POOL_COUNTERS = {
    "requests_num": "connection requests",
    "requests_queued": "connection requests that had to wait",
    "requests_errors": "connection requests that failed (timeout or error)",
    "connections_num": "connection attempts to the database",
    "connections_errors": "failed connection attempts",
    "connections_lost": "connections found broken",
}


class _PoolCollector(Collector):
    """Reads the pool's statistics at scrape time."""

    def __init__(self, pool: PoolGetter) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        """One gauge or counter per pool statistic (zeros before the store is open)."""
        pool = self._pool()
        stats = pool.get_stats() if pool is not None else {}
        for key, doc in _POOL_GAUGES.items():
            gauge = GaugeMetricFamily(f"ilji_db_{key}", f"Database pool: {doc}.")
            gauge.add_metric([], float(stats.get(key, 0)))
            yield gauge
        for key, doc in _POOL_COUNTERS.items():
            counter = CounterMetricFamily(f"ilji_db_{key}", f"Database pool: {doc}.")
            counter.add_metric([], float(stats.get(key, 0)))
            yield counter


class Metrics:
    """Every metric the server exposes at /metrics."""

    def __init__(self, pool: PoolGetter) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ilji_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "ilji_http_request_duration_seconds",
            "Time to answer an HTTP request (SSE: the stream's lifetime).",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.appends = Counter("ilji_appends", "Append requests by outcome.", ["outcome"], registry=r)
        self.events_appended = Counter("ilji_events_appended", "Events stored by appends.", registry=r)
        self.conflicts = Counter(
            "ilji_append_conflicts", "Appends refused by a conflict.", ["reason"], registry=r
        )
        self.sse_connections = Gauge("ilji_sse_connections", "Open SSE streams.", ["feed"], registry=r)
        self.sse_events = Counter("ilji_sse_events_sent", "Events sent over SSE.", registry=r)
        self.oldest_transaction = Gauge(
            "ilji_oldest_transaction_age_seconds",
            "Age of the oldest open writing transaction (it holds back the global log).",
            registry=r,
        )
        self.notifications = Gauge(
            "ilji_store_notifications_sent",
            "NOTIFYs sent after appends by this process (fewer than appends: they coalesce).",
            registry=r,
        )
        self.database_up = Gauge(
            "ilji_database_up", "1 when the last health check reached the database.", registry=r
        )
        self.loop_runs = Counter(
            "ilji_background_loop_runs", "Iterations of background loops.", ["loop", "outcome"], registry=r
        )
        self.loop_last_run = Gauge(
            "ilji_background_loop_last_run_timestamp_seconds",
            "When a background loop last finished an iteration (Unix time).",
            ["loop"],
            registry=r,
        )
        r.register(_PoolCollector(pool))


_CONVERTOR = re.compile(r"\{(\w+):[^}]+\}")


def _route_label(scope: Scope) -> str:
    # The documented template (`/v1/streams/{stream}`), without Starlette's convertor names.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return _CONVERTOR.sub(r"{\1}", path) if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status; logs it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_label(scope)
            method = str(scope.get("method", ""))
            labels = (method, route, str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(elapsed)
            if self.log_requests:
                # The route template, not the path: paths hold stream names, queries may hold anything.
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
