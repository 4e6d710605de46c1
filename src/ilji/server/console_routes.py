"""The web console at /console, and the JSON routes it reads besides the API's own.

The console is plain HTML, CSS and JavaScript modules in `ilji/server/console/`, shipped inside
the package and served from memory: no build step, no CDN, nothing fetched from elsewhere, so
it works from an installed wheel and behind a firewall alike. Its files hold no data and are
served without a token; every data call it makes goes through the API and its auth.

The JSON routes (read role):

- `GET /v1/streams`: streams by name prefix and category, a page at a time (`ilji.store.catalog`);
- `GET /v1/stats`: event and stream counts and a chart of recent appends, bounded in cost;
- `GET /v1/views`: the registered domain views (`ilji.app.time_travel`);
- `GET /v1/states/{stream}`: a stream of a registered domain, folded version by version;
- `GET /v1/whoami`: whether tokens are on and what the presented token may do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request
from starlette.responses import RedirectResponse, Response

from ilji.app.time_travel import MAX_STATES_LIMIT, state_history
from ilji.domain.errors import StreamNotFound
from ilji.domain.events import MAX_SAFE_POSITION
from ilji.domain.validation import MAX_STREAM_NAME_LENGTH, validate_stream_name
from ilji.server import problem_docs
from ilji.server.auth import Role, require, role_of_request
from ilji.server.models import CATEGORY_PATTERN, PREFIX_PATTERN
from ilji.server.openapi import api_router
from ilji.server.orjson_response import OrjsonResponse
from ilji.server.paths import StreamName
from ilji.server.response_models import (
    StateHistoryOut,
    StatsOut,
    StreamList,
    ViewList,
    WhoAmI,
    history_json,
    listing_json,
    stats_json,
)
from ilji.server.state import State
from ilji.store.catalog import MAX_LIST_LIMIT

# -- the console's files -------------------------------------------------------------------------

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

#: Sent with every console file: only this server's own scripts, styles and API, no framing.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate every time (the ETag makes that a 304): an upgraded server never runs with
    # yesterday's scripts.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _load_assets() -> dict[str, _Asset]:
    """Every console file by name, read once (the folder is flat: no path ever reaches the disk)."""
    folder = resources.files("ilji.server").joinpath("console")
    assets: dict[str, _Asset] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if not entry.is_file() or suffix not in _MEDIA_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[entry.name] = _Asset(body, _MEDIA_TYPES[suffix], etag)
    return assets


ASSETS = _load_assets()


def _serve(request: Request, name: str) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise HTTPException(404, detail="no such console file")
    headers = {**_SECURITY_HEADERS, "ETag": asset.etag}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


# -- routes --------------------------------------------------------------------------------------


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return problem_docs.responses(problem_docs.CONSOLE, *codes)


NamePrefix = Annotated[
    str,
    Query(
        max_length=MAX_STREAM_NAME_LENGTH,
        pattern=PREFIX_PATTERN,
        description="list streams whose names start with this (empty: all)",
    ),
]
Cursor = Annotated[
    str,
    Query(
        max_length=MAX_STREAM_NAME_LENGTH,
        pattern=PREFIX_PATTERN,
        description="the `next` of the previous page: list names after this one",
    ),
]
CategoryFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_STREAM_NAME_LENGTH,
        pattern=CATEGORY_PATTERN,
        description="only streams of this category (named `category` or `category-...`)",
    ),
]


router = api_router()
read = [Depends(require(Role.READ))]
check_admin = require(Role.ADMIN)


@router.get("/console", include_in_schema=False)
async def console_root() -> Response:
    # Relative, so it also works under a path prefix: the modules load from "./...".
    return RedirectResponse("console/", status_code=307)


@router.get("/console/", include_in_schema=False)
async def console_index(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/console/{asset}", include_in_schema=False)
async def console_asset(request: Request, asset: str) -> Response:
    return _serve(request, asset)


@router.get(
    "/v1/streams",
    summary="List streams by name prefix and category",
    response_model=StreamList,
    dependencies=read,
    responses=_problems(400, *problem_docs.AUTH_CODES, 422, 503),
    tags=["streams"],
)
async def list_streams(
    request: Request,
    server: State,
    prefix: NamePrefix = "",
    category: CategoryFilter = None,
    after: Cursor = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description="streams to return, 1..1000")] = 50,
) -> Response:
    """Streams in name order, each with its version and newest event, a page at a time.

    Walks the (stream, version) index one stream at a time, so a page costs about the same
    however many events the streams hold. Ilji's own streams (names starting with $, like
    $audit) are listed for admin tokens only; asking for them by prefix or category needs one.
    """
    if prefix.startswith("$") or (category or "").startswith("$"):
        await check_admin(request)
    listing = await server.catalog.list_streams(
        prefix=prefix,
        category=category,
        after=after,
        limit=limit,
        include_system=role_of_request(request) == Role.ADMIN,
    )
    return OrjsonResponse(listing_json(listing))


@router.get(
    "/v1/stats",
    summary="Event and stream counts, and appends over time",
    response_model=StatsOut,
    dependencies=read,
    responses=_problems(*problem_docs.AUTH_CODES, 422, 503),
    tags=["log"],
)
async def stats(
    server: State,
    minutes: Annotated[
        int, Query(ge=5, le=1440, description="the chart's window: 60 buckets of `minutes` seconds")
    ] = 60,
) -> Response:
    """Counts (exact up to a cap, estimates past it) and events recorded per bucket recently."""
    found = await server.catalog.stats(window_minutes=minutes)
    return OrjsonResponse(stats_json(found, minutes))


@router.get(
    "/v1/views",
    summary="Domain views: the categories whose streams can be shown version by version",
    response_model=ViewList,
    dependencies=read,
    responses=_problems(*problem_docs.AUTH_CODES),
    tags=["streams"],
)
async def views(server: State) -> Response:
    """The registered domain views (`ilji serve --example NAME` registers the example domains')."""
    registered = server.views
    return OrjsonResponse(
        {
            "views": [
                {
                    "category": v.category,
                    "title": v.title or v.state_type,
                    "state_type": v.state_type,
                    "event_types": v.event_types(),
                }
                for v in registered
            ]
        }
    )


@router.get(
    "/v1/states/{stream:ilji_name}",
    summary="Time travel: a stream's state after each of its events",
    response_model=StateHistoryOut,
    dependencies=read,
    responses=_problems(400, *problem_docs.AUTH_CODES, 404, 422, 503),
    tags=["streams"],
)
async def states(
    request: Request,
    server: State,
    stream: StreamName,
    from_version: Annotated[
        int, Query(ge=1, le=MAX_SAFE_POSITION, description="the first version to show")
    ] = 1,
    limit: Annotated[
        int, Query(ge=1, le=MAX_STATES_LIMIT, description=f"versions to return, 1..{MAX_STATES_LIMIT}")
    ] = 50,
) -> Response:
    """For a stream of a registered domain view: each event, the folded state after it, and the changes.

    The stream is folded from its first event by the domain's own `evolve` (upcasters
    included); an event that cannot be applied is listed with its `error`.
    """
    validate_stream_name(stream, allow_system=True)
    if stream.startswith("$"):
        await check_admin(request)
    registered = server.views
    view = registered.for_stream(stream)
    if view is None:
        raise HTTPException(
            404,
            detail={
                "code": "no-domain-view",
                "message": f"no domain view is registered for the category of {stream!r}",
            },
        )
    store = server.store.reader
    history = await state_history(store, view, stream, from_version=from_version, limit=limit)
    if history.version == 0:
        raise StreamNotFound(stream)
    return OrjsonResponse(history_json(history, from_version, limit))


@router.get(
    "/v1/whoami",
    summary="Whether tokens are on, and the presented token's role",
    response_model=WhoAmI,
    dependencies=read,
    responses=_problems(*problem_docs.AUTH_CODES),
    tags=["operations"],
)
async def whoami(request: Request, server: State) -> Response:
    """The console asks this first: a 401 means it must ask for a token."""
    role = role_of_request(request)
    assert role is not None  # the dependency let the request through
    return OrjsonResponse({"auth": server.tokens.enabled, "role": role.name.lower()})
