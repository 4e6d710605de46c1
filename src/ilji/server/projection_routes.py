"""The projection routes of HTTP API v1: status, pause/resume, rebuild, parked events, waits.

Each handler is one call of `ilji.projections.admin` (the same functions `ilji projections`
uses), so the server needs no projection code: everything it shows or changes is a row in
the database, and the workers pick changes up within a third of their lease TTL. Reading
needs the read role; changing anything needs the admin role, and is audited (`$audit`).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from starlette.responses import Response

from ilji.domain.events import MAX_SAFE_POSITION
from ilji.projections import admin
from ilji.server.auth import Role, require
from ilji.server.lifecycle_routes import actor_of
from ilji.server.models import (
    ParkedList,
    ProjectionList,
    ProjectionOut,
    RebuildAccepted,
    ReplayAccepted,
    ReplayRequest,
    WaitReached,
    parked_json,
    projection_json,
)
from ilji.server.problems import responses
from ilji.server.routes import OrjsonResponse, store_of
from ilji.store.postgres import PostgresEventStore

#: The longest a client may ask `/wait` to hold its request (seconds).
MAX_WAIT_SECONDS = 30.0

_DESCRIPTIONS = {
    400: "The request body is not valid JSON.",
    401: "A missing or unknown bearer token.",
    403: "The token's role does not allow this route (actions need the admin role).",
    404: "No projection of that name is registered.",
    413: "The request body is over the configured limit.",
    422: "The request does not match the schema (wrong types, values out of range).",
    503: "The database is unavailable or not migrated; retry later.",
    504: "The projection did not reach the position within `timeout` seconds.",
}

ProjectionName = Annotated[
    str, Path(min_length=1, max_length=63, description="the projection's name, like seat_counts")
]


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return responses(_DESCRIPTIONS, *codes)


async def _one(store: PostgresEventStore, name: str) -> dict[str, Any]:
    (found,) = await admin.status(store, name)
    return projection_json(found)


def add_projection_routes(app: FastAPI, auth: bool) -> None:
    """Add the /v1/projections routes to `app`; `auth` adds the 401/403 answers to the documentation."""
    router = app.router
    auth_codes = (401, 403) if auth else ()
    read = [Depends(require(Role.READ))]
    act = [Depends(require(Role.ADMIN))]
    tags: list[str | Enum] = ["projections"]

    @router.get(
        "/v1/projections",
        summary="Status of every projection",
        response_model=ProjectionList,
        dependencies=read,
        responses=_problems(*auth_codes, 503),
        tags=tags,
    )
    async def list_projections(request: Request) -> Response:
        """Every registered projection: versions, pause flag, per partition checkpoint, lag, owner, state."""
        found = await admin.status(store_of(request))
        return OrjsonResponse({"projections": [projection_json(p) for p in found]})

    @router.get(
        "/v1/projections/{name}/parked",
        summary="Parked (poison) events of a projection",
        response_model=ParkedList,
        dependencies=read,
        responses=_problems(*auth_codes, 404, 422, 503),
        tags=tags,
    )
    async def parked(
        request: Request,
        name: ProjectionName,
        include_replayed: Annotated[bool, Query(description="also list events replayed since")] = False,
        limit: Annotated[int, Query(ge=1, le=1000, description="events to return, 1..1000")] = 100,
    ) -> Response:
        """Events the projection gave up on, oldest first, with the error and the attempts made."""
        store = store_of(request)
        events = await admin.list_parked(store, name, include_replayed=include_replayed, limit=limit)
        if not events:
            await admin.status(store, name)  # an unknown name is a 404, not an empty list
        return OrjsonResponse({"projection": name, "events": [parked_json(e) for e in events]})

    @router.get(
        "/v1/projections/{name}/wait",
        summary="Wait until a projection reflects a position (read-your-writes)",
        response_model=WaitReached,
        dependencies=read,
        responses=_problems(*auth_codes, 404, 422, 503, 504),
        tags=tags,
    )
    async def wait(
        request: Request,
        name: ProjectionName,
        position: Annotated[
            int,
            Query(ge=0, le=MAX_SAFE_POSITION, description="the `last_position` an append returned"),
        ],
        timeout: Annotated[  # noqa: ASYNC109 - a query parameter: the client's deadline
            float, Query(ge=0, le=MAX_WAIT_SECONDS, description="seconds to wait at most, 0..30")
        ] = 5.0,
    ) -> Response:
        """200 once the serving version has dealt with every event up to `position`; 504 after `timeout`."""
        store = store_of(request)
        # Checked once up front: an unknown name is a 404 at once, not after `timeout`
        # (`wait_for_position` keeps waiting for a projection a worker has yet to register).
        if not await admin.reached(store, name, position):
            await admin.wait_for_position(store, name, position, timeout)
        return OrjsonResponse({"projection": name, "position": position, "reached": True})

    @router.get(
        "/v1/projections/{name}",
        summary="Status of one projection",
        response_model=ProjectionOut,
        dependencies=read,
        responses=_problems(*auth_codes, 404, 422, 503),
        tags=tags,
    )
    async def get_projection(request: Request, name: ProjectionName) -> Response:
        """One projection's status, like an item of GET /v1/projections."""
        return OrjsonResponse(await _one(store_of(request), name))

    @router.post(
        "/v1/projections/{name}/pause",
        summary="Pause a projection",
        response_model=ProjectionOut,
        dependencies=act,
        responses=_problems(*auth_codes, 404, 422, 503),
        tags=tags,
    )
    async def pause(request: Request, name: ProjectionName) -> Response:
        """Its workers finish their batch and release their leases within a third of the lease TTL."""
        store = store_of(request)
        await admin.pause(store, name, actor=actor_of(request))
        return OrjsonResponse(await _one(store, name))

    @router.post(
        "/v1/projections/{name}/resume",
        summary="Resume a projection",
        response_model=ProjectionOut,
        dependencies=act,
        responses=_problems(*auth_codes, 404, 422, 503),
        tags=tags,
    )
    async def resume(request: Request, name: ProjectionName) -> Response:
        """Undo a pause, and restart partitions the stop policy failed on a poison event."""
        store = store_of(request)
        await admin.resume(store, name, actor=actor_of(request))
        return OrjsonResponse(await _one(store, name))

    @router.post(
        "/v1/projections/{name}/rebuild",
        summary="Rebuild a projection without downtime",
        status_code=202,
        response_model=RebuildAccepted,
        dependencies=act,
        responses=_problems(*auth_codes, 404, 422, 503),
        tags=tags,
    )
    async def rebuild(request: Request, name: ProjectionName) -> Response:
        """Workers build the next version from position 0 beside the serving one, then cut over.

        Follow it with GET /v1/projections/{name}: `rebuilding` lists the new version's
        partitions until `active_version` becomes the returned version.
        """
        version = await admin.request_rebuild(store_of(request), name, actor=actor_of(request))
        return OrjsonResponse({"projection": name, "version": version}, status_code=202)

    @router.post(
        "/v1/projections/{name}/parked/replay",
        summary="Apply parked events once more",
        status_code=202,
        response_model=ReplayAccepted,
        dependencies=act,
        responses=_problems(400, *auth_codes, 404, 413, 422, 503),
        tags=tags,
    )
    async def replay(
        request: Request,
        name: ProjectionName,
        body: Annotated[ReplayRequest | None, Body()] = None,
    ) -> Response:
        """Mark parked events (all, or `event_ids`) for replay; the owning workers apply them once.

        An event that fails again stays parked. Watch GET .../parked?include_replayed=true.
        """
        ids = body.event_ids if body is not None else None
        requested = await admin.replay_parked(store_of(request), name, ids, actor=actor_of(request))
        return OrjsonResponse(
            {
                "projection": name,
                "requested": requested,
                "event_ids": [str(i) for i in ids] if ids is not None else None,
            },
            status_code=202,
        )
