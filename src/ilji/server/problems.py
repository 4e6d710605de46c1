"""Errors as `application/problem+json` (RFC 9457): one table maps each Ilji error to one status.

Every failure a client can see goes through `problem()`, so all error bodies share one shape:
`type`, `title`, `status`, `detail`, plus `expected`/`actual` for a wrong expected version and
`errors` for request validation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from ilji.domain.errors import (
    AppendOnlyViolation,
    ConfigurationError,
    ConflictError,
    DuplicateEventId,
    EmbeddedPostgresError,
    IljiError,
    PositionLimitReached,
    SchemaError,
    StoreUnavailable,
    StreamDeleted,
    StreamNotFound,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.projections.errors import LeaseLost, ProjectionError, ProjectionNotFound, WaitTimeout
from ilji.server.auth import Forbidden, Unauthorized

log = logging.getLogger("ilji.server")


class PreconditionFailed(WrongExpectedVersion):
    """A wrong expected version that the client stated as `If-Match` (HTTP 412, RFC 9110).

    The same conflict as a wrong `expected_version` in the body (409), named by the status
    HTTP gives a failed precondition header, so generic HTTP clients and caches understand it.
    """

    @classmethod
    def of(cls, exc: WrongExpectedVersion) -> PreconditionFailed:
        """The same conflict, as a failed `If-Match`."""
        return cls(exc.stream, exc.expected, exc.actual)


PROBLEM_MEDIA_TYPE = "application/problem+json"

#: The one table: each error class and the HTTP status it means. The most specific class wins.
STATUS: dict[type[IljiError], int] = {
    ValidationError: 400,
    Unauthorized: 401,
    Forbidden: 403,
    StreamNotFound: 404,
    ProjectionNotFound: 404,
    PreconditionFailed: 412,
    WrongExpectedVersion: 409,
    DuplicateEventId: 409,
    ConflictError: 409,
    AppendOnlyViolation: 409,
    LeaseLost: 409,
    StoreUnavailable: 503,
    SchemaError: 503,
    EmbeddedPostgresError: 503,
    # Not retryable and not the client's fault: the store cannot take more events.
    PositionLimitReached: 507,
    ConfigurationError: 503,
    # The projection did not reach the position in time: the server waited for another
    # component (the workers) that did not answer in time, which is what 504 says. Not 408:
    # that one means the *client* was too slow to send its request.
    WaitTimeout: 504,
    ProjectionError: 500,
    IljiError: 500,
}

#: The name of the problem schema among the OpenAPI document's components.
PROBLEM_COMPONENT = "Problem"

#: The JSON schema of a problem body: one component of the OpenAPI document, which every
#: error response refers to (generated clients then have one Problem type, not one per route).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error (RFC 9457 problem details): `type` tells the kind, `detail` what went wrong.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": "a URI naming the kind of problem, like urn:ilji:problem:…",
        },
        "title": {"type": "string", "description": "the HTTP status's phrase"},
        "status": {"type": "integer", "description": "the HTTP status code"},
        "detail": {"type": "string", "description": "what went wrong, for a person to read"},
        "expected": {
            "description": "the expected version (wrong expected version only)",
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        },
        "actual": {"type": "integer", "description": "the stream's version (wrong expected version only)"},
        "projection": {"type": "string", "description": "the projection's name (projection problems only)"},
        "position": {"type": "integer", "description": "the position waited for (wait timeouts only)"},
        "stream": {
            "type": "string",
            "description": "the stream (soft-deleted streams, and the failing part of a multi-stream append)",
        },
        "part": {
            "type": "integer",
            "description": "the index of the failing part (multi-stream appends only)",
        },
        "deleted_version": {
            "type": "integer",
            "description": "the version at which the stream was soft-deleted; an admin can restore it",
        },
        "event_ids": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the event ids stored already (duplicate event ids only)",
        },
        "errors": {
            "type": "array",
            "items": {"type": "object"},
            "description": "what is wrong in the request",
        },
    },
}


def responses(descriptions: Mapping[int, str], *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for `codes`: each a problem+json body, described from `descriptions`."""
    ref = {"$ref": f"#/components/schemas/{PROBLEM_COMPONENT}"}
    return {
        code: {"description": descriptions[code], "content": {PROBLEM_MEDIA_TYPE: {"schema": dict(ref)}}}
        for code in codes
    }


def status_of(exc: IljiError) -> int:
    """The HTTP status for `exc`: the entry of its closest class in `STATUS`."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response."""
    phrase = HTTPStatus(status).phrase
    body = {
        "type": f"urn:ilji:problem:{code or phrase.lower().replace(' ', '-')}",
        "title": phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(
        orjson.dumps(body, default=str), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def error_response(exc: IljiError) -> Response:
    """The problem response for an Ilji error."""
    status = status_of(exc)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, WrongExpectedVersion):
        extra = {"expected": exc.expected, "actual": exc.actual}
    elif isinstance(exc, DuplicateEventId):
        extra = {"event_ids": exc.event_ids}
    if isinstance(exc, WrongExpectedVersion | DuplicateEventId) and exc.part is not None:
        extra |= {"part": exc.part, "stream": exc.stream}  # a multi-stream append's failing part
    elif isinstance(exc, ValidationError):
        extra = {"errors": [{"field": exc.field, "message": exc.message}]}
    elif isinstance(exc, WaitTimeout):
        extra = {"projection": exc.name, "position": exc.position}
    elif isinstance(exc, ProjectionNotFound):
        extra = {"projection": exc.name}
    elif isinstance(exc, StreamDeleted):
        extra = {"stream": exc.stream, "deleted_version": exc.deleted_version}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        headers["Retry-After"] = "1"
    if status >= 500:
        log.warning("request failed", extra={"error": exc.code, "detail": exc.message})
    return problem(status, exc.message, code=exc.code, headers=headers, **extra)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Pydantic's errors carry the offending input, which may be large or binary: keep the
    # location, the message and the kind only.
    out = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        out.append({"field": ".".join(loc), "message": str(error.get("msg", "")), "kind": error.get("type")})
    return out


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Make every error of `app` a problem+json response."""

    async def on_ilji_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, IljiError)
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
        return problem(422, summary, code="validation-error", errors=errors)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code in (204, 304) or exc.status_code < 400:  # pragma: no cover - not raised
            return Response(status_code=exc.status_code, headers=headers)
        code: str | None = None
        if isinstance(exc.detail, dict):
            # Example domains raise {"code": rule, "message": text}: keep both for the client.
            code = str(exc.detail["code"]) if exc.detail.get("code") else None
            detail = str(exc.detail.get("message") or HTTPStatus(exc.status_code).phrase)
        elif isinstance(exc.detail, str):
            detail = exc.detail
        else:
            detail = HTTPStatus(exc.status_code).phrase
        if exc.status_code == 405:
            # Starlette names the methods of the first route matching the path only; the
            # stream URL has two routes (GET and POST), so collect them all.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem(exc.status_code, detail, code=code, headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", extra={"path": request.url.path})
        return problem(500, "an unexpected error occurred; see the server log", code="internal")

    app.add_exception_handler(IljiError, on_ilji_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
