"""The lifecycle routes of HTTP API v1 (admin only): soft delete, restore, truncate, retention.

They live under `/v1/lifecycle/`, with the action before the name, rather than beside the
stream URL: a stream name may contain `/`, so `/v1/streams/a/restore` already means "the stream
named a/restore", and no two of these routes may match one path either. Each handler is
one store call; the store records every change as `$lifecycle` and `$audit` events, with the
actor this module derives from the request (`actor_of`). The audit log itself is read like
any stream, with an admin token: `GET /v1/streams/$audit`.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Path, Request
from starlette.responses import Response

from ilji.domain.errors import StreamNotFound
from ilji.domain.validation import MAX_STREAM_NAME_LENGTH
from ilji.server.auth import Role, Tokens, bearer_token, require
from ilji.server.models import (
    CATEGORY_PATTERN,
    WRITABLE_STREAM_PATTERN,
    RetentionIn,
    RetentionOut,
    StreamLifecycleOut,
    TruncateRequest,
    lifecycle_json,
)
from ilji.server.problems import responses
from ilji.server.routes import OrjsonResponse, store_of
from ilji.store.audit import Actor, token_fingerprint
from ilji.store.lifecycle import Retention

_DESCRIPTIONS = {
    400: "Invalid input (a reserved $ name, a version out of range, no retention rule given).",
    401: "A missing or unknown bearer token.",
    403: "Lifecycle routes need the admin role.",
    404: "The stream has no events.",
    413: "The request body is over the configured limit.",
    422: "The request does not match the schema (bad JSON, wrong types, values out of range).",
    503: "The database is unavailable or not migrated; retry later.",
}

StreamName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_STREAM_NAME_LENGTH,
        pattern=WRITABLE_STREAM_PATTERN,
        description="like order-42 (Ilji's own $ streams cannot be hidden)",
    ),
]
CategoryName = Annotated[
    str,
    Path(min_length=1, max_length=MAX_STREAM_NAME_LENGTH, pattern=CATEGORY_PATTERN, description="like order"),
]


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return responses(_DESCRIPTIONS, *codes)


def actor_of(request: Request) -> Actor:
    """Who is acting, for the audit log: the token's role and fingerprint, never the token.

    The fingerprint is the first 12 hex digits of the token's SHA-256, which is also how a
    hashed entry of ILJI_API_TOKENS (`sha256:<hex>=admin`) starts: an operator can tell which
    configured token acted without the log holding anything that lets one act.
    """
    tokens: Tokens = request.app.state.tokens
    if not tokens.enabled:
        return Actor(via="http")
    token = bearer_token(request)
    if token is None:  # pragma: no cover - the admin dependency refused the request already
        return Actor(via="http")
    role = tokens.role_of(token)
    return Actor(
        via="http",
        role=role.name.lower() if role is not None else None,
        token_fingerprint=token_fingerprint(token),
    )


def _retention_json(category: str, rule: Retention | None) -> dict[str, Any]:
    return (rule or Retention(category)).as_json()


def add_lifecycle_routes(app: FastAPI, auth: bool) -> None:
    """Add the /v1/lifecycle routes to `app`; `auth` adds the 401/403 answers to the documentation."""
    router = app.router
    auth_codes = (401, 403) if auth else ()
    admin = [Depends(require(Role.ADMIN))]
    tags: list[str | Enum] = ["lifecycle"]

    @router.get(
        "/v1/lifecycle/streams/{stream:ilji_name}",
        summary="A stream's lifecycle: version, soft delete, truncation",
        response_model=StreamLifecycleOut,
        dependencies=admin,
        responses=_problems(400, *auth_codes, 404, 422, 503),
        tags=tags,
    )
    async def get_stream(request: Request, stream: StreamName) -> Response:
        """The stream's version (hidden events included) and what its readers see."""
        state = await store_of(request).stream_lifecycle(stream)
        if state.version == 0:
            raise StreamNotFound(stream)
        return OrjsonResponse(lifecycle_json(state))

    @router.post(
        "/v1/lifecycle/delete/{stream:ilji_name}",
        summary="Soft-delete a stream (recoverable)",
        response_model=StreamLifecycleOut,
        dependencies=admin,
        responses=_problems(400, *auth_codes, 404, 422, 503),
        tags=tags,
    )
    async def delete_stream(request: Request, stream: StreamName) -> Response:
        """Reads of the stream answer 404 and the global log leaves its events out; they stay
        stored. An append brings the stream back with the new events only; restore shows all."""
        state = await store_of(request).delete_stream(stream, actor=actor_of(request))
        return OrjsonResponse(lifecycle_json(state))

    @router.post(
        "/v1/lifecycle/restore/{stream:ilji_name}",
        summary="Undo a soft delete",
        response_model=StreamLifecycleOut,
        dependencies=admin,
        responses=_problems(400, *auth_codes, 404, 422, 503),
        tags=tags,
    )
    async def restore_stream(request: Request, stream: StreamName) -> Response:
        """The events the delete hid are visible again (a stream that is not deleted is left as it is)."""
        state = await store_of(request).restore_stream(stream, actor=actor_of(request))
        return OrjsonResponse(lifecycle_json(state))

    @router.post(
        "/v1/lifecycle/truncate/{stream:ilji_name}",
        summary="Hide a stream's versions below a version",
        response_model=StreamLifecycleOut,
        dependencies=admin,
        responses=_problems(400, *auth_codes, 404, 413, 422, 503),
        tags=tags,
    )
    async def truncate_stream(
        request: Request, stream: StreamName, body: Annotated[TruncateRequest, Body()]
    ) -> Response:
        """Versions below `before` are hidden from every read; `before: 1` shows them all again."""
        state = await store_of(request).truncate_stream(stream, body.before, actor=actor_of(request))
        return OrjsonResponse(lifecycle_json(state))

    @router.get(
        "/v1/lifecycle/retention/{category:ilji_name}",
        summary="A category's retention rule",
        response_model=RetentionOut,
        dependencies=admin,
        responses=_problems(400, *auth_codes, 422, 503),
        tags=tags,
    )
    async def get_retention(request: Request, category: CategoryName) -> Response:
        """`max_age_seconds` and `max_count`, both null when the category has no rule."""
        return OrjsonResponse(_retention_json(category, await store_of(request).retention(category)))

    @router.put(
        "/v1/lifecycle/retention/{category:ilji_name}",
        summary="Set a category's retention",
        response_model=RetentionOut,
        dependencies=admin,
        responses=_problems(400, *auth_codes, 413, 422, 503),
        tags=tags,
    )
    async def put_retention(
        request: Request, category: CategoryName, body: Annotated[RetentionIn, Body()]
    ) -> Response:
        """Hide the category's events older than `max_age_seconds`, and all but the newest
        `max_count` of each of its streams (give one or both)."""
        rule = await store_of(request).set_retention(
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
        dependencies=admin,
        responses=_problems(400, *auth_codes, 422, 503),
        tags=tags,
    )
    async def delete_retention(request: Request, category: CategoryName) -> Response:
        """The category's events are visible again; answers the (now empty) rule."""
        await store_of(request).clear_retention(category, actor=actor_of(request))
        return OrjsonResponse(_retention_json(category, None))
