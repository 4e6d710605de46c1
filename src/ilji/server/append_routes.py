"""The append routes of HTTP API v1: one stream (`POST /v1/streams/{stream}`) and several at once.

Handlers translate HTTP to store calls and back, nothing more: validation of names and
shapes happens in the store, and its errors become problem+json through `problems.STATUS`.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError as PydanticValidationError
from starlette.responses import Response

from ilji.domain.errors import ConflictError, IljiError, ValidationError, WrongExpectedVersion
from ilji.domain.events import AppendResult, NewEvent, new_event_id
from ilji.domain.validation import MAX_STREAM_NAME_LENGTH, validate_expected_version, validate_stream_name
from ilji.server import problem_docs
from ilji.server.auth import Role, require
from ilji.server.metrics import Metrics
from ilji.server.models import (
    WRITABLE_STREAM_PATTERN,
    AppendRequest,
    EventIn,
    MultiAppendRequest,
    MultiAppendResponse,
)
from ilji.server.openapi import api_router, operation_id
from ilji.server.orjson_response import OrjsonResponse
from ilji.server.paths import PlainRoute, stream_url
from ilji.server.preconditions import PreconditionFailed, etag, expected_from_if_match
from ilji.server.state import State, state

router = api_router(tags=["streams"])

check_write = require(Role.WRITE)


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return problem_docs.responses(problem_docs.STREAMS, *codes)


def _new_events(events: list[EventIn]) -> list[NewEvent]:
    return [
        NewEvent(type=e.type, data=e.data, metadata=e.metadata, id=e.id or new_event_id()) for e in events
    ]


def _count_refusal(metrics: Metrics, exc: IljiError) -> None:
    metrics.appends.labels(exc.code).inc()
    if isinstance(exc, ConflictError):
        metrics.conflicts.labels(exc.code).inc()


def _count_stored(metrics: Metrics, idempotent: bool, events: int) -> None:
    if idempotent:
        metrics.appends_idempotent.inc()
    else:
        metrics.appends_stored.inc()
        metrics.events_appended.inc(events)


def result_json(result: AppendResult) -> dict[str, Any]:
    """Where a batch landed, as the API shows it (`AppendResponse`); whether it was a retry is
    told by the status instead (200, or 201 when stored). Written out: it is on every append."""
    return {
        "stream": result.stream,
        "first_version": result.first_version,
        "last_version": result.last_version,
        "first_position": result.first_position,
        "last_position": result.last_position,
    }


# Appending is the hot path, so it is a plain Starlette route: it reads and validates its
# body itself (pydantic's JSON parser, straight from bytes) and skips FastAPI's parameter
# machinery, which cost about as much CPU per request as the database call. FastAPI does
# not document plain routes: `append_operation` does, and the app merges it into the
# OpenAPI document.
async def append(request: Request) -> Response:
    """Append a batch atomically if the stream is at the expected version."""
    await check_write(request)
    stream: str = request.path_params["stream"]
    validate_stream_name(stream)
    # The body is read as JSON whatever its Content-Type says (the API's contract: every
    # body is JSON); cross-site browser requests are refused by `CrossOriginGuard`.
    raw = await request.body()
    try:
        body = AppendRequest.model_validate_json(raw)
    except PydanticValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
    expected = validate_expected_version(body.expected_version)
    if_match = request.headers.get("if-match")
    if if_match is not None:
        from_header = expected_from_if_match(if_match)
        if "expected_version" in body.model_fields_set and from_header != expected:
            raise ValidationError("If-Match", "disagrees with expected_version in the body")
        expected = from_header
    events = _new_events(body.events)
    server = state(request)
    try:
        result = await server.store.append(stream, events, expected)
    except IljiError as exc:
        _count_refusal(server.metrics, exc)
        if if_match is not None and isinstance(exc, WrongExpectedVersion):
            # RFC 9110: a failed If-Match is 412; the body's expected_version stays 409.
            raise PreconditionFailed.of(exc) from None
        raise
    _count_stored(server.metrics, result.idempotent, len(events))
    return OrjsonResponse(
        result_json(result),
        status_code=200 if result.idempotent else 201,
        # RFC 9110: a 201 names what it created; here, the stream read from the batch's first event.
        headers={
            "ETag": etag(result.last_version),
            "Location": stream_url(result.stream, result.first_version),
        },
    )


#: `append` as a route; the app factory adds it straight to the app's router, since
#: `include_router` would copy it into a plain Starlette route without the metrics label.
append_route = PlainRoute("/v1/streams/{stream:ilji_name}", append, methods=["POST"])


def append_operation(auth: bool) -> dict[str, Any]:
    """The OpenAPI operation of POST /v1/streams/{stream}, written out (see `append`)."""
    response_schema = {"$ref": "#/components/schemas/AppendResponse"}
    headers = {"ETag": {"description": "the stream's version after the append", "schema": {"type": "string"}}}
    codes = (400, 403, *((401,) if auth else ()), 409, 412, 413, 422, 503, 507)
    return {
        "tags": ["streams"],
        "summary": "Append events to a stream",
        "description": "Append a batch atomically if the stream is at the expected version.",
        "operationId": operation_id("append"),
        "parameters": [
            {
                "name": "stream",
                "in": "path",
                "required": True,
                "description": "like order-42 (names starting with $ are reserved)",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_STREAM_NAME_LENGTH,
                    "pattern": WRITABLE_STREAM_PATTERN,
                },
            },
            {
                "name": "if-match",
                "in": "header",
                "required": False,
                "description": 'the expected version, ETag style (3, "3" or *); overrides the body\'s; '
                "412 when it does not hold",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AppendRequest"}}},
        },
        "responses": {
            "201": {
                "description": "Stored.",
                "headers": {
                    **headers,
                    "Location": {
                        "description": "where the stored events are read: the stream from the first one",
                        "schema": {"type": "string"},
                    },
                },
                "content": {"application/json": {"schema": response_schema}},
                # What a client does next; schemathesis follows these in its stateful phase.
                "links": {
                    "ReadTheStream": {
                        "operationId": operation_id("read_stream"),
                        "parameters": {
                            "stream": "$request.path.stream",
                            "from_version": "$response.body#/first_version",
                        },
                    },
                    "AppendAtTheNewVersion": {
                        "operationId": operation_id("append"),
                        "parameters": {
                            "stream": "$request.path.stream",
                            "header.if-match": "$response.body#/last_version",
                        },
                    },
                },
            },
            "200": {
                "description": "An exact retry of a stored batch: nothing new was stored.",
                "headers": headers,
                "content": {"application/json": {"schema": response_schema}},
            },
            **{str(code): doc for code, doc in _problems(*codes).items()},
        },
    }


@router.post(
    "/v1/append",
    summary="Append to several streams atomically",
    status_code=201,
    response_model=MultiAppendResponse,
    dependencies=[Depends(check_write)],
    responses={
        200: {
            "description": "An exact resend of a stored call: nothing new was stored.",
            "model": MultiAppendResponse,
        },
        **_problems(400, *problem_docs.AUTH_CODES, 409, 413, 422, 503, 507),
    },
)
async def append_streams(server: State, body: MultiAppendRequest) -> Response:
    """Append every part (a stream, its events, its expected version) in one transaction, or
    none. A problem names the failing part: `part` (its index), `stream`, and for a wrong
    expected version `expected` and `actual`."""
    parts = [
        (part.stream, _new_events(part.events), validate_expected_version(part.expected_version))
        for part in body.parts
    ]
    try:
        results = await server.store.append_streams(parts)
    except IljiError as exc:
        _count_refusal(server.metrics, exc)
        raise
    idempotent = all(r.idempotent for r in results)
    _count_stored(server.metrics, idempotent, sum(len(events) for _, events, _ in parts))
    return OrjsonResponse(
        {"parts": [result_json(r) for r in results]}, status_code=200 if idempotent else 201
    )
