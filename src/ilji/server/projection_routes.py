"""The projection routes of HTTP API v1: status, pause/resume, rebuild, parked events, waits.

Each handler is one call of `ilji.projections.admin` (the same functions `ilji projections`
uses), so the server needs no projection code: everything it shows or changes is a row in
the database, and the workers pick changes up within a third of their lease TTL. Reading
needs the read role; changing anything needs the admin role, and is audited (`$audit`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Path, Query, Request
from starlette.responses import Response

from ilji.domain.events import MAX_SAFE_POSITION
from ilji.projections import admin
from ilji.projections.shapes import parked_json, projection_json
from ilji.server import problem_docs
from ilji.server.actor import actor_of
from ilji.server.auth import Role, require
from ilji.server.models import ReplayRequest
from ilji.server.openapi import api_router
from ilji.server.orjson_response import OrjsonResponse
from ilji.server.response_models import (
    ParkedList,
    ProjectionList,
    ProjectionOut,
    RebuildAccepted,
    ReplayAccepted,
    WaitReached,
)
from ilji.server.state import State
from ilji.store.postgres import PostgresEventStore

#: The longest a client may ask `/wait` to hold its request (seconds).
MAX_WAIT_SECONDS = 30.0

ProjectionName = Annotated[
    str, Path(min_length=1, max_length=63, description="the projection's name, like seat_counts")
]


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return problem_docs.responses(problem_docs.PROJECTIONS, *codes)


async def _one(store: PostgresEventStore, name: str) -> dict[str, Any]:
    (found,) = await admin.status(store, name)
    return projection_json(found)


router = api_router(tags=["projections"])
read = [Depends(require(Role.READ))]
act = [Depends(require(Role.ADMIN))]


@router.get(
    "/v1/projections",
    summary="Status of every projection",
    response_model=ProjectionList,
    dependencies=read,
    responses=_problems(*problem_docs.AUTH_CODES, 503),
)
async def list_projections(server: State) -> Response:
    """Every registered projection: versions, pause flag, per partition checkpoint, lag, owner, state."""
    found = await admin.status(server.store)
    return OrjsonResponse({"projections": [projection_json(p) for p in found]})


@router.get(
    "/v1/projections/{name}/parked",
    summary="Parked (poison) events of a projection",
    response_model=ParkedList,
    dependencies=read,
    responses=_problems(*problem_docs.AUTH_CODES, 404, 422, 503),
)
async def parked(
    server: State,
    name: ProjectionName,
    include_replayed: Annotated[bool, Query(description="also list events replayed since")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="events to return, 1..1000")] = 100,
) -> Response:
    """Events the projection gave up on, oldest first, with the error and the attempts made."""
    store = server.store
    events = await admin.list_parked(store, name, include_replayed=include_replayed, limit=limit)
    if not events:
        await admin.status(store, name)  # an unknown name is a 404, not an empty list
    return OrjsonResponse({"projection": name, "events": [parked_json(e) for e in events]})


@router.get(
    "/v1/projections/{name}/wait",
    summary="Wait until a projection reflects a position (read-your-writes)",
    response_model=WaitReached,
    dependencies=read,
    responses=_problems(*problem_docs.AUTH_CODES, 404, 422, 503, 504),
)
async def wait(
    server: State,
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
    store = server.store
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
    responses=_problems(*problem_docs.AUTH_CODES, 404, 422, 503),
)
async def get_projection(server: State, name: ProjectionName) -> Response:
    """One projection's status, like an item of GET /v1/projections."""
    return OrjsonResponse(await _one(server.store, name))


@router.post(
    "/v1/projections/{name}/pause",
    summary="Pause a projection",
    response_model=ProjectionOut,
    dependencies=act,
    responses=_problems(*problem_docs.AUTH_CODES, 404, 422, 503),
)
async def pause(request: Request, server: State, name: ProjectionName) -> Response:
    """Its workers finish their batch and release their leases within a third of the lease TTL."""
    store = server.store
    await admin.pause(store, name, actor=actor_of(request))
    return OrjsonResponse(await _one(store, name))


@router.post(
    "/v1/projections/{name}/resume",
    summary="Resume a projection",
    response_model=ProjectionOut,
    dependencies=act,
    responses=_problems(*problem_docs.AUTH_CODES, 404, 422, 503),
)
async def resume(request: Request, server: State, name: ProjectionName) -> Response:
    """Undo a pause, and restart partitions the stop policy failed on a poison event."""
    store = server.store
    await admin.resume(store, name, actor=actor_of(request))
    return OrjsonResponse(await _one(store, name))


@router.post(
    "/v1/projections/{name}/rebuild",
    summary="Rebuild a projection without downtime",
    status_code=202,
    response_model=RebuildAccepted,
    dependencies=act,
    responses=_problems(*problem_docs.AUTH_CODES, 404, 422, 503),
)
async def rebuild(request: Request, server: State, name: ProjectionName) -> Response:
    """Workers build the next version from position 0 beside the serving one, then cut over.

    Follow it with GET /v1/projections/{name}: `rebuilding` lists the new version's
    partitions until `active_version` becomes the returned version.
    """
    version = await admin.request_rebuild(server.store, name, actor=actor_of(request))
    return OrjsonResponse({"projection": name, "version": version}, status_code=202)


@router.post(
    "/v1/projections/{name}/parked/replay",
    summary="Apply parked events once more",
    status_code=202,
    response_model=ReplayAccepted,
    dependencies=act,
    responses=_problems(400, *problem_docs.AUTH_CODES, 404, 413, 422, 503),
)
async def replay(
    request: Request,
    server: State,
    name: ProjectionName,
    body: Annotated[ReplayRequest | None, Body()] = None,
) -> Response:
    """Mark parked events (all, or `event_ids`) for replay; the owning workers apply them once.

    An event that fails again stays parked. Watch GET .../parked?include_replayed=true.
    """
    ids = body.event_ids if body is not None else None
    requested = await admin.replay_parked(server.store, name, ids, actor=actor_of(request))
    return OrjsonResponse(
        {
            "projection": name,
            "requested": requested,
            "event_ids": [str(i) for i in ids] if ids is not None else None,
        },
        status_code=202,
    )
