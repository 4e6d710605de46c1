"""Errors as `application/problem+json` (RFC 9457): one table maps each Ilji error to one status.

Every failure a client can see goes through `problem()`, so all error bodies share one shape:
`type`, `title`, `status`, `detail`, plus `expected`/`actual` for a wrong expected version and
`errors` for request validation.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from ilji.domain.decider import CommandRejected
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
from ilji.server.preconditions import PreconditionFailed
from ilji.server.problem_docs import PROBLEM_MEDIA_TYPE

log = logging.getLogger(__name__)


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
    # A business rule refused the command (an example domain's `SeatsUnavailable`): the
    # request conflicts with the current state, as a wrong expected version does.
    CommandRejected: 409,
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


async def on_ilji_error(request: Request, exc: Exception) -> Response:
    """An Ilji error (the store's, a domain rule's, the server's own) as its problem."""
    assert isinstance(exc, IljiError)
    return error_response(exc)


async def on_validation_error(request: Request, exc: Exception) -> Response:
    """A request that does not match its schema: 422, with what is wrong where."""
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
    return problem(422, summary, code="validation-error", errors=errors)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's and FastAPI's HTTP errors (404, 405, a body limit's 408/413) as problems."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code in (204, 304) or exc.status_code < 400:  # pragma: no cover - not raised
        return Response(status_code=exc.status_code, headers=headers)
    code: str | None = None
    if isinstance(exc.detail, dict):
        # A route may name its refusal as {"code", "message"} (the console's `no-domain-view`): keep both.
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


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    """Anything else: a 500 that says where to look, the traceback in the log only."""
    log.exception("unexpected error", extra={"path": request.url.path})
    return problem(500, "an unexpected error occurred; see the server log", code="internal")


def install(app: FastAPI) -> None:
    """Make every error of `app` a problem+json response."""
    app.add_exception_handler(IljiError, on_ilji_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
