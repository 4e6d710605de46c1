"""The lifecycle routes of HTTP API v1 (admin only): soft delete, restore, truncate, retention.

They live under `/v1/lifecycle/`, with the action before the name, rather than beside the
stream URL: a stream name may contain `/`, so `/v1/streams/a/restore` already means "the stream
named a/restore", and no two of these routes may match one path either. Each handler is
one store call; the store records every change as `$lifecycle` and `$audit` events, with the
actor `server.actor` derives from the request. The audit log itself is read like
any stream, with an admin token: `GET /v1/streams/$audit`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Path, Request
from starlette.responses import Response

from ilji.domain.errors import StreamNotFound
from ilji.domain.validation import MAX_STREAM_NAME_LENGTH
from ilji.server import problem_docs
from ilji.server.actor import actor_of
from ilji.server.auth import Role, require
from ilji.server.models import WRITABLE_STREAM_PATTERN, RetentionIn, TruncateRequest
from ilji.server.openapi import api_router
from ilji.server.orjson_response import OrjsonResponse
from ilji.server.paths import CategoryName
from ilji.server.response_models import RetentionOut, StreamLifecycleOut
from ilji.server.state import State
from ilji.store.lifecycle import Retention

StreamName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_STREAM_NAME_LENGTH,
        pattern=WRITABLE_STREAM_PATTERN,
        description="like order-42 (Ilji's own $ streams cannot be hidden)",
    ),
]


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return problem_docs.responses(problem_docs.LIFECYCLE, *codes)


def _retention_json(category: str, rule: Retention | None) -> dict[str, Any]:
    return (rule or Retention(category)).as_json()


router = api_router(tags=["lifecycle"], dependencies=[Depends(require(Role.ADMIN))])


@router.get(
    "/v1/lifecycle/streams/{stream:ilji_name}",
    summary="A stream's lifecycle: version, soft delete, truncation",
    response_model=StreamLifecycleOut,
    responses=_problems(400, *problem_docs.AUTH_CODES, 404, 422, 503),
)
async def get_stream(server: State, stream: StreamName) -> Response:
    """The stream's version (hidden events included) and what its readers see."""
    state = await server.store.stream_lifecycle(stream)
    if state.version == 0:
        raise StreamNotFound(stream)
    return OrjsonResponse(state.as_json())


@router.post(
    "/v1/lifecycle/delete/{stream:ilji_name}",
    summary="Soft-delete a stream (recoverable)",
    response_model=StreamLifecycleOut,
    responses=_problems(400, *problem_docs.AUTH_CODES, 404, 422, 503),
)
async def delete_stream(request: Request, server: State, stream: StreamName) -> Response:
    """Reads of the stream answer 404 and the global log leaves its events out; they stay
    stored. An append brings the stream back with the new events only; restore shows all."""
    state = await server.store.delete_stream(stream, actor=actor_of(request))
    return OrjsonResponse(state.as_json())


@router.post(
    "/v1/lifecycle/restore/{stream:ilji_name}",
    summary="Undo a soft delete",
    response_model=StreamLifecycleOut,
    responses=_problems(400, *problem_docs.AUTH_CODES, 404, 422, 503),
)
async def restore_stream(request: Request, server: State, stream: StreamName) -> Response:
    """The events the delete hid are visible again (a stream that is not deleted is left as it is)."""
    state = await server.store.restore_stream(stream, actor=actor_of(request))
    return OrjsonResponse(state.as_json())


@router.post(
    "/v1/lifecycle/truncate/{stream:ilji_name}",
    summary="Hide a stream's versions below a version",
    response_model=StreamLifecycleOut,
    responses=_problems(400, *problem_docs.AUTH_CODES, 404, 413, 422, 503),
)
async def truncate_stream(
    request: Request, server: State, stream: StreamName, body: Annotated[TruncateRequest, Body()]
) -> Response:
    """Versions below `before` are hidden from every read; `before: 1` shows them all again."""
    state = await server.store.truncate_stream(stream, body.before, actor=actor_of(request))
    return OrjsonResponse(state.as_json())


@router.get(
    "/v1/lifecycle/retention/{category:ilji_name}",
    summary="A category's retention rule",
    response_model=RetentionOut,
    responses=_problems(400, *problem_docs.AUTH_CODES, 422, 503),
)
async def get_retention(server: State, category: CategoryName) -> Response:
    """`max_age_seconds` and `max_count`, both null when the category has no rule."""
    return OrjsonResponse(_retention_json(category, await server.store.retention(category)))


@router.put(
    "/v1/lifecycle/retention/{category:ilji_name}",
    summary="Set a category's retention",
    response_model=RetentionOut,
    responses=_problems(400, *problem_docs.AUTH_CODES, 413, 422, 503),
)
async def put_retention(
    request: Request, server: State, category: CategoryName, body: Annotated[RetentionIn, Body()]
) -> Response:
    """Hide the category's events older than `max_age_seconds`, and all but the newest
    `max_count` of each of its streams (give one or both)."""
    rule = await server.store.set_retention(
        category,
        max_age_seconds=body.max_age_seconds,
        max_count=body.max_count,
        actor=actor_of(request),
    )
    return OrjsonResponse(rule.as_json())


@router.delete(
    "/v1/lifecycle/retention/{category:ilji_name}",
    summary="Remove a category's retention",
    response_model=RetentionOut,
    responses=_problems(400, *problem_docs.AUTH_CODES, 422, 503),
)
async def delete_retention(request: Request, server: State, category: CategoryName) -> Response:
    """The category's events are visible again; answers the (now empty) rule."""
    await server.store.clear_retention(category, actor=actor_of(request))
    return OrjsonResponse(_retention_json(category, None))
