"""Prometheus metrics of one server app, in the app's own registry (so tests can run many apps).

Request counts and latencies come from an ASGI middleware that labels each request with its
route template (never the raw path: stream names would make the label set unbounded). Pool
usage is read from psycopg's pool statistics when Prometheus scrapes.

Projection gauges (`ilji_projection_*`) need database queries, and a collector runs
synchronously inside the scrape: so the server's background monitor loop refreshes a snapshot
of `ilji.projections.admin.status` (`Metrics.refresh_projections`) and the collector only reads
that snapshot. Values are as old as `ilji_projection_snapshot_timestamp_seconds` says (at
most one monitor interval, `ILJI_MONITOR_INTERVAL`).
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import os
import platform
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import ilji
from ilji.domain.errors import IljiError
from ilji.projections import admin
from ilji.store.group_commit import Distribution, GroupCommitter
from ilji.store.postgres import PostgresEventStore

access_log = logging.getLogger("ilji.server.access")
log = logging.getLogger(__name__)

PROJECTION_LOOP = "projection_metrics"

# A `*_created` series per counter and histogram doubles what Prometheus stores for a
# timestamp nobody queries; the process start time is in `process_start_time_seconds`.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

#: Probes and scrapes arrive every few seconds: their access lines are DEBUG, not INFO.
QUIET_ROUTES = frozenset({"/readyz", "/healthz", "/metrics"})
# A client's request id is echoed into logs and headers: short and plain, or a new one is made.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

PoolStats = Callable[[], Mapping[str, int]]
GroupGetter = Callable[[], GroupCommitter | None]

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
    "pool_checks": "checks of every idle connection, started when one was found broken",
}


class _NotificationsCollector(Collector):
    """A counter read at scrape time from the store this process serves (a running total)."""

    def __init__(self) -> None:
        self.store: PostgresEventStore | None = None

    def collect(self) -> Iterator[Metric]:
        """`ilji_store_notifications_sent_total`."""
        counter = CounterMetricFamily(
            "ilji_store_notifications_sent",
            "NOTIFYs sent after appends by this process (fewer than appends: they coalesce).",
        )
        counter.add_metric([], float(self.store.notifications_sent if self.store is not None else 0))
        yield counter


class _PoolCollector(Collector):
    """Reads the pool's statistics (`Database.stats`) at scrape time."""

    def __init__(self, stats: PoolStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        """One gauge or counter per pool statistic (zeros before the store is open)."""
        stats = self._stats()
        for key, doc in _POOL_GAUGES.items():
            gauge = GaugeMetricFamily(f"ilji_db_{key}", f"Database pool: {doc}.")
            gauge.add_metric([], float(stats.get(key, 0)))
            yield gauge
        for key, doc in _POOL_COUNTERS.items():
            counter = CounterMetricFamily(f"ilji_db_{key}", f"Database pool: {doc}.")
            counter.add_metric([], float(stats.get(key, 0)))
            yield counter


class _GroupCommitCollector(Collector):
    """The store's group commit histograms, read at scrape time (empty when grouping is off)."""

    def __init__(self, group: GroupGetter) -> None:
        self._group = group

    def collect(self) -> Iterator[Metric]:
        """Group sizes and queueing waits, as the committer counted them."""
        group = self._group()
        if group is None:
            return
        yield _histogram("ilji_append_group_size", "Appends written together by one statement.", group.sizes)
        yield _histogram(
            "ilji_append_group_wait_seconds",
            "Time an append queued behind the group in flight before its own group was sent.",
            group.waits,
        )


def _histogram(name: str, doc: str, distribution: Distribution) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc)
    # Bounds written as prometheus_client writes its own histograms' (1.0, +Inf).
    buckets = [
        ("+Inf" if math.isinf(bound) else repr(float(bound)), float(count))
        for bound, count in distribution.cumulative()
    ]
    family.add_metric([], buckets, sum_value=distribution.sum)
    return family


_PARTITION_LABELS = ["projection", "version", "partition"]
_PARTITION_GAUGES: dict[str, tuple[str, Callable[[admin.PartitionStatus], float]]] = {
    "checkpoint": ("Global position the partition has dealt with.", lambda p: p.checkpoint),
    "events_behind": (
        f"Events the partition still has to read (counted up to {admin.LAG_COUNT_CAP}).",
        lambda p: p.events_behind,
    ),
    "lag_seconds": ("Age of the oldest event not dealt with yet (0: caught up).", lambda p: p.lag_seconds),
    "events_per_second": ("Recent apply rate of the partition.", lambda p: p.events_per_second),
    "parked": ("Parked (poison) events not replayed yet.", lambda p: p.parked),
    "fencing_token": ("Lease fencing token: goes up at every takeover.", lambda p: p.fencing_token),
}
_STATES = ("running", "catching_up", "stopped", "paused", "failed", "retired")


class _ProjectionCollector(Collector):
    """Projection gauges from the last snapshot (refreshed by the monitor loop, never at scrape)."""

    def __init__(self) -> None:
        self.snapshot: Sequence[admin.ProjectionStatus] = ()
        self.taken_at: float | None = None

    def collect(self) -> Iterator[Metric]:
        """One gauge family per measure, a series per projection, version and partition."""
        families = {
            key: GaugeMetricFamily(f"ilji_projection_{key}", doc, labels=_PARTITION_LABELS)
            for key, (doc, _) in _PARTITION_GAUGES.items()
        }
        state = GaugeMetricFamily(
            "ilji_projection_state",
            "1 for the partition's current state, 0 for the others.",
            labels=[*_PARTITION_LABELS, "state"],
        )
        active = GaugeMetricFamily(
            "ilji_projection_active_version", "The version that serves reads.", labels=["projection"]
        )
        paused = GaugeMetricFamily("ilji_projection_paused", "1 when paused.", labels=["projection"])
        workers = GaugeMetricFamily(
            "ilji_projection_workers",
            "Live workers of the projection by code version and what they do (serving, building,"
            " idle: code older than the serving version's, refused: see the projection's errors).",
            labels=["projection", "code_version", "state"],
        )
        for projection in self.snapshot:
            active.add_metric([projection.name], projection.active_version)
            paused.add_metric([projection.name], 1.0 if projection.paused else 0.0)
            tally = collections.Counter((str(w.code_version), w.state or "") for w in projection.workers)
            for (code, worker_state), count in sorted(tally.items()):
                workers.add_metric([projection.name, code, worker_state], float(count))
            for p in (*projection.partitions, *projection.rebuilding):
                labels = [p.projection, str(p.version), str(p.partition)]
                for key, (_, value) in _PARTITION_GAUGES.items():
                    families[key].add_metric(labels, float(value(p)))
                for name in _STATES:
                    state.add_metric([*labels, name], 1.0 if p.state == name else 0.0)
        yield from families.values()
        yield state
        yield active
        yield paused
        yield workers
        taken = GaugeMetricFamily(
            "ilji_projection_snapshot_timestamp_seconds",
            "When the projection gauges were read from the database (Unix time; 0: not yet).",
        )
        taken.add_metric([], self.taken_at or 0.0)
        yield taken


class Metrics:
    """Every metric the server exposes at /metrics."""

    def __init__(self, pool_stats: PoolStats, group: GroupGetter = lambda: None) -> None:
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
        self.rate_limited = Counter(
            "ilji_http_rate_limited",
            "Requests refused with 429 by the rate limit, by the client's role (none: no valid token).",
            ["role"],
            registry=r,
        )
        self.appends = Counter("ilji_appends", "Append requests by outcome.", ["outcome"], registry=r)
        #: The two outcomes of every successful append, looked up once (see `MetricsMiddleware`).
        self.appends_stored = self.appends.labels("stored")
        self.appends_idempotent = self.appends.labels("idempotent")
        self.events_appended = Counter("ilji_events_appended", "Events stored by appends.", registry=r)
        self.conflicts = Counter(
            "ilji_append_conflicts", "Appends refused by a conflict.", ["reason"], registry=r
        )
        self.sse_connections = Gauge("ilji_sse_connections", "Open SSE streams.", ["feed"], registry=r)
        self.sse_events = Counter("ilji_sse_events_sent", "Events sent over SSE.", registry=r)
        self.oldest_transaction = Gauge(
            "ilji_oldest_transaction_age_seconds",
            "Age of the oldest open writing transaction, prepared (two-phase) ones included "
            "(it holds back the global log).",
            registry=r,
        )
        self.transaction_ids_left = Gauge(
            "ilji_transaction_ids_left",
            "Transaction ids PostgreSQL can still assign before positions would pass 2^53 and "
            "appends fail (the bound is 2^41).",
            registry=r,
        )
        self.notifications = _NotificationsCollector()
        r.register(self.notifications)
        Info("ilji_build", "The running Ilji: its version and Python's.", registry=r).info(
            {"version": ilji.__version__, "python": platform.python_version()}
        )
        ProcessCollector(registry=r)  # process_cpu_seconds_total, resident memory, open fds...
        PlatformCollector(registry=r)  # python_info
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
        r.register(_PoolCollector(pool_stats))
        r.register(_GroupCommitCollector(group))
        self.projections = _ProjectionCollector()
        r.register(self.projections)

    async def refresh_projections(self, store: PostgresEventStore) -> None:
        """Read every projection's status into the snapshot the projection gauges show.

        Called by the server's monitor loop; a failure keeps the previous snapshot (its
        timestamp tells how old it is) and is counted, not raised.
        """
        try:
            snapshot = await admin.status(store)
        except Exception as exc:  # the loop must outlive any failure; it is counted and logged
            self.loop_runs.labels(PROJECTION_LOOP, "error").inc()
            message = exc.message if isinstance(exc, IljiError) else repr(exc)
            log.warning("projection metrics not refreshed", extra={"error": message})
        else:
            self.projections.snapshot = snapshot
            self.projections.taken_at = time.time()
            self.loop_runs.labels(PROJECTION_LOOP, "ok").inc()
            log.debug("projection metrics refreshed", extra={"projections": len(snapshot)})
        self.loop_last_run.labels(PROJECTION_LOOP).set_to_current_time()


_CONVERTOR = re.compile(r"\{(\w+):[^}]+\}")


def _route_label(scope: Scope) -> str:
    # The documented template (`/v1/streams/{stream}`), without Starlette's convertor names.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return _template(path) if isinstance(path, str) else "unmatched"


@functools.lru_cache(maxsize=256)
def _template(path: str) -> str:
    # One per route of the app: cached, since it runs on every request.
    return _CONVERTOR.sub(r"{\1}", path)


def request_id(scope: Scope) -> str:
    """The client's `X-Request-ID` when it is short and plain, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    # 32 random hex digits, like a UUID's, without building a UUID object on every request.
    return os.urandom(16).hex()


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status; logs it.

    Each request carries an id (`X-Request-ID` from the client, or a new one): it is in the
    access log line and in the response's `X-Request-ID` header, so both ends can find it.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, *, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode("latin-1"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_label(scope)
            method = str(scope.get("method", ""))
            labels = (method, route, str(status))
            children = self._children.get(labels)
            if children is None:
                # prometheus_client looks a child up under a lock and checks its labels on
                # every `labels()`: the pair is kept per label set (no more of them than the
                # metrics hold anyway).
                children = self._children[labels] = (
                    self.metrics.requests.labels(*labels),
                    self.metrics.latency.labels(*labels),
                )
            children[0].inc()
            children[1].observe(elapsed)
            if self.log_requests:
                # The route template, not the path: paths hold stream names, queries may hold anything.
                access_log.log(
                    logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "request_id": rid,
                    },
                )
