"""The app factory: settings (and, for tests, an open store) in, a FastAPI app out.

`create_app(settings)` opens its own store when the app starts (the embedded PostgreSQL when
no database URL is set) and closes it when the app stops; `create_app(settings, store=s)`
serves an already-open store and leaves closing it to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import signal
import threading
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

import ilji
from ilji import examples
from ilji.app import DomainViews
from ilji.bootstrap import open_runtime
from ilji.domain.errors import IljiError
from ilji.domain.events import TRANSACTION_IDS_WARNING
from ilji.server import (
    append_routes,
    console_routes,
    docs_page,
    lifecycle_routes,
    probe_routes,
    problems,
    projection_routes,
    read_routes,
)
from ilji.server.auth import Role, parse_tokens, require
from ilji.server.body_limit import BodyLimitMiddleware
from ilji.server.browser_guards import CrossOriginGuard, HostGuard, parse_allowed_hosts
from ilji.server.metrics import Metrics, MetricsMiddleware
from ilji.server.models import component_schemas
from ilji.server.openapi import finish, route_operation_id
from ilji.server.orjson_response import OrjsonResponse
from ilji.server.ratelimit import RateLimitMiddleware, rate_limits
from ilji.server.sse import SseSlots
from ilji.server.state import Drain, ServerState
from ilji.server.utf8_url import Utf8UrlMiddleware
from ilji.settings import Settings
from ilji.store.group_commit import GroupCommitter
from ilji.store.postgres import PostgresEventStore

log = logging.getLogger(__name__)

MONITOR_LOOP = "database_monitor"

#: The app's routers, in the order they match (after the plain append route).
ROUTERS = (
    append_routes.router,
    read_routes.router,
    probe_routes.router,
    projection_routes.router,
    lifecycle_routes.router,
    console_routes.router,
    docs_page.router,
)


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[PostgresEventStore]:
    """The store the settings describe, migrated; the embedded server when no URL is set."""
    async with open_runtime(settings) as runtime:
        yield runtime.store


def mount_examples(app: FastAPI, server: ServerState, names: tuple[str, ...]) -> None:
    """Add the HTTP routes of the chosen example domains (`ilji serve --example NAME`).

    Their routers are built on the open store, so they are added when the app starts, before
    it answers any request. Writing routes need a write token, like the API's own appends.
    Their domain views (the console's time travel) are registered in `server.views`.
    """
    if not names:
        return
    from ilji.store.snapshots import PostgresSnapshotStore

    store = server.store
    for name in names:
        module = examples.load(name, "http")
        app.include_router(
            module.router(store, PostgresSnapshotStore(store.database)),
            dependencies=[Depends(require(Role.WRITE))],
        )
        domain = examples.load(name, "domain")
        for view in getattr(domain, "views", ()):
            server.views.register(view)
        log.info("example routes mounted", extra={"example": name})
    app.openapi_schema = None  # regenerate the document with the new routes


async def watch_database(
    store: PostgresEventStore, metrics: Metrics, interval: float, stop: asyncio.Event
) -> None:
    """Background loop: is the database up, how old is its oldest open transaction, and how are
    the projections doing (the snapshot behind the `ilji_projection_*` gauges)?"""
    up: bool | None = None
    warned = False
    while not stop.is_set():
        try:
            await store.ping()
            age = await store.oldest_transaction_age()
            ids_left = await store.transaction_ids_left()
        except IljiError as exc:
            metrics.database_up.set(0)
            metrics.loop_runs.labels(MONITOR_LOOP, "error").inc()
            if up is not False:  # log changes, not every failed check
                log.warning("database unreachable", extra={"error": exc.message})
            up = False
        else:
            metrics.database_up.set(1)
            metrics.oldest_transaction.set(age)
            metrics.transaction_ids_left.set(ids_left)
            if (ids_left < TRANSACTION_IDS_WARNING) != warned:  # log crossings, not every check
                warned = not warned
                if warned:
                    log.warning(
                        "few transaction ids left: appends stop at 2^41 (docs/en/operations.md)",
                        extra={"transaction_ids_left": ids_left},
                    )
            metrics.loop_runs.labels(MONITOR_LOOP, "ok").inc()
            if up is False:
                log.info("database reachable again")
            log.debug("database check", extra={"oldest_transaction_seconds": round(age, 3)})
            up = True
            await metrics.refresh_projections(store)
        metrics.loop_last_run.labels(MONITOR_LOOP).set_to_current_time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _chain_signal_handlers(drain: Drain) -> None:
    """Start draining on SIGTERM/SIGINT, then let the handler installed before (uvicorn's) run."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            drain.start()
            previous(signum, frame)

        signal.signal(sig, handler)


def _telemetry_off() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry switched off, on the FastAPI releases that have it.

    It looks up the global OpenTelemetry providers on every request (reading os.environ
    each time): about a tenth of an append request's CPU in a py-spy profile, for nothing
    when no provider is set up. Ilji's server exports Prometheus metrics instead (/metrics).
    """
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _tune_gc() -> None:
    """Make the garbage collector cheaper for a serving process.

    Each request allocates many short-lived objects; with CPython's default threshold a young
    collection runs every 700 allocations, and every older one walks all the objects made at
    start (modules, the app, pydantic models). Freezing those (they live as long as the
    process) and collecting the young generation ten times less often cut the server's CPU per
    append request by about a fifth in our measurements (docs/en/performance.md), and its p99.
    Cycles are still collected; only the cadence changes.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def create_app(
    settings: Settings,
    *,
    store: PostgresEventStore | None = None,
    drain: Drain | None = None,
    drain_on_signals: bool = False,
    tune_gc: bool = False,
    views: DomainViews | None = None,
) -> FastAPI:
    """Build the server app. With `store`, serve it (the caller closes it); otherwise open one.

    `views` are the domain views the console's time travel shows (the examples' are added
    by `settings.examples`).

    `drain_on_signals` (for `ilji serve`) starts draining on SIGTERM/SIGINT, before uvicorn
    waits for open connections: SSE streams would otherwise keep it waiting until its timeout.
    `tune_gc` (for `ilji serve`, which owns its process) sets up the garbage collector for
    serving once the app has started (`_tune_gc`).
    """
    tokens = parse_tokens(settings.api_tokens)
    limits = rate_limits(settings)
    # The collectors are asked for their names at once, before `server` exists: zeros until then.
    server: ServerState | None = None
    metrics = Metrics(lambda: _pool_stats(server), lambda: _group_commit(server))
    server = ServerState(
        settings=settings,
        tokens=tokens,
        metrics=metrics,
        drain=drain or Drain(),
        sse_slots=SseSlots(settings.max_sse_connections),
        views=views if views is not None else DomainViews(),
        served=store,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.drain.bind(asyncio.get_running_loop())
        if drain_on_signals:
            _chain_signal_handlers(server.drain)
        async with contextlib.AsyncExitStack() as stack:
            served = store if store is not None else await stack.enter_async_context(open_store(settings))
            server.served = served
            metrics.notifications.store = served
            mount_examples(app, server, settings.examples)
            stop = asyncio.Event()
            monitor = asyncio.create_task(
                watch_database(served, metrics, settings.monitor_interval, stop), name="ilji-db-monitor"
            )
            if tune_gc:
                _tune_gc()
            log.info("server ready", extra={"auth": tokens.enabled, "body_limit": settings.body_limit})
            try:
                yield
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(monitor, 5.0)

    app = FastAPI(
        title="Ilji",
        version=ilji.__version__,
        summary="An event store on PostgreSQL: append, read, and follow streams over HTTP.",
        lifespan=lifespan,
        openapi_url=None,  # served by `docs_page`, behind the read role when tokens are configured
        docs_url=None,
        redoc_url=None,
        default_response_class=OrjsonResponse,
        **_telemetry_off(),
        generate_unique_id_function=route_operation_id,
    )
    app.state.server = server
    problems.install(app)
    # Straight onto the app's router, not with include_router(): FastAPI nests an included
    # router as one route, which hides its routes' methods from a 405's `Allow` header
    # (`problems._allowed_methods`), and would copy the plain append route into a Starlette
    # route that does not name itself for the metrics label.
    app.router.routes.append(append_routes.append_route)
    for router in ROUTERS:
        app.router.routes.extend(router.routes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(component_schemas())
            stream_path = schema["paths"].setdefault("/v1/streams/{stream}", {})
            stream_path["post"] = append_routes.append_operation(tokens.enabled)
            app.openapi_schema = finish(schema, auth=tokens.enabled, rate_limited=limits is not None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # The last added middleware runs first: metrics see every answer, including a 413 or 429.
    app.add_middleware(BodyLimitMiddleware, limit=settings.body_limit, timeout=settings.body_timeout)
    app.add_middleware(Utf8UrlMiddleware)
    app.add_middleware(CrossOriginGuard)
    if not tokens.enabled:
        # Every request is an admin's without tokens: only this machine's names may reach it.
        app.add_middleware(HostGuard, allowed=parse_allowed_hosts(settings.allowed_hosts))
    if limits is not None:
        app.add_middleware(RateLimitMiddleware, limits=limits, tokens=tokens, metrics=metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics, log_requests=settings.access_log)
    return app


def _pool_stats(server: ServerState | None) -> dict[str, int]:
    # No statistics (zeros) before the store is open.
    if server is None or server.served is None:
        return {}
    return server.served.database.stats()


def _group_commit(server: ServerState | None) -> GroupCommitter | None:
    return server.served.group_commit if server is not None and server.served is not None else None
