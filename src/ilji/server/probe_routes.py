"""The operations routes: liveness, readiness, Prometheus metrics, and `/` for a first visitor."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import HTMLResponse, Response

import ilji
from ilji.domain.errors import SchemaError, SchemaTooNew, StoreUnavailable
from ilji.server import problem_docs
from ilji.server.auth import Role, require
from ilji.server.models import Health
from ilji.server.openapi import api_router
from ilji.server.orjson_response import OrjsonResponse
from ilji.server.state import State
from ilji.store.migrate import latest_version, schema_version

router = api_router(tags=["operations"])

#: What `/` points a first visitor to.
HOME_LINKS = (
    ("/console", "the web console"),
    ("/docs", "the interactive API documentation"),
    ("/openapi.json", "the OpenAPI document"),
    ("/v1/all", "the API: the global log (streams at /v1/streams/{stream})"),
    ("/readyz", "readiness"),
    ("/metrics", "Prometheus metrics"),
)


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return problem_docs.responses(problem_docs.STREAMS, *codes)


@router.get("/healthz", summary="Liveness: the process answers (no database call)", response_model=Health)
async def healthz() -> Response:
    """Always 200 while the process runs."""
    return OrjsonResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is migrated",
    response_model=Health,
    responses=_problems(503),
)
async def readyz(server: State) -> Response:
    """200 when requests can be served; 503 while the database is away or the server drains."""
    if server.drain.event.is_set():
        raise StoreUnavailable("the server is shutting down")
    async with server.store.database.connection(timeout=2.0) as conn:
        found = await schema_version(conn)
    if found < latest_version():
        raise SchemaError(f"the schema is at version {found}, this server needs {latest_version()}")
    if found > latest_version():
        raise SchemaTooNew(found, latest_version())
    return OrjsonResponse({"status": "ready"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[Depends(require(Role.READ))],
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **_problems(*problem_docs.AUTH_CODES),
    },
)
async def metrics(server: State) -> Response:
    """Request counts and latencies, appends, conflicts, SSE connections, pool usage, transaction age."""
    # On the event loop: the pool collector reads the pool's statistics, which are not
    # meant to be read from another thread. A scrape takes well under a millisecond.
    return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    """A first visit (a browser, `curl localhost:8000`) finds its way instead of a 404."""
    if "text/html" in request.headers.get("accept", ""):
        items = "".join(f'<li><a href="{href}">{href}</a>: {what}</li>' for href, what in HOME_LINKS)
        page = f"<!doctype html><title>Ilji</title><h1>Ilji {ilji.__version__}</h1><ul>{items}</ul>"
        return HTMLResponse(page)
    return OrjsonResponse(
        {"name": "ilji", "version": ilji.__version__, "links": {href: what for href, what in HOME_LINKS}}
    )
