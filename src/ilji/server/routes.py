"""The routes of HTTP API v1: append, read a stream, the global log, categories, probes, metrics.

Handlers translate HTTP to store calls and back, nothing more: validation of names and
shapes happens in the store (errors become problem+json through `problems.STATUS`), and
each read URL answers with JSON or, for `Accept: text/event-stream`, with a live SSE feed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any, Literal
from urllib.parse import quote

import orjson
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError as PydanticValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from ilji.domain.errors import (
    ConflictError,
    IljiError,
    SchemaError,
    SchemaTooNew,
    StoreUnavailable,
    StreamNotFound,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.domain.events import (
    EXISTS,
    MAX_SAFE_POSITION,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    new_event_id,
)
from ilji.domain.validation import (
    MAX_STREAM_NAME_LENGTH,
    validate_category,
    validate_expected_version,
    validate_stream_name,
)
from ilji.server.auth import Role, require
from ilji.server.metrics import Metrics
from ilji.server.models import (
    CATEGORY_PATTERN,
    NAME_PATTERN,
    WRITABLE_STREAM_PATTERN,
    AppendRequest,
    Health,
    LogPage,
    MultiAppendRequest,
    MultiAppendResponse,
    StreamPage,
    event_json,
)
from ilji.server.openapi import operation_id
from ilji.server.problems import PreconditionFailed, responses
from ilji.server.sse import SSE_MEDIA_TYPE, follow_stream, parse_last_event_id, sse_response, wants_sse
from ilji.store.database import translate
from ilji.store.migrate import latest_version, schema_version
from ilji.store.postgres import PostgresEventStore

MAX_LIMIT = 1000


class OrjsonResponse(JSONResponse):
    """JSON rendered by orjson: several times faster than the standard library for event pages."""

    def render(self, content: Any) -> bytes:
        """Serialise `content`."""
        return orjson.dumps(content)


_DESCRIPTIONS = {
    400: "Invalid input (a stream, category or type name, a header, or event contents).",
    401: "A missing or unknown bearer token.",
    403: "The token's role does not allow this route, or a web page from another site tried to change data.",
    404: "The stream has no events.",
    409: "A conflict: `expected_version` in the body does not hold, or an event id is stored already.",
    412: "The `If-Match` precondition failed: the stream is not at that version.",
    413: "The request body is over the configured limit.",
    422: "The request does not match the schema (bad JSON, wrong types, values out of range).",
    503: "The database is unavailable or not migrated; retry later.",
    507: "The store reached its position limit (2^41 transaction ids); retrying does not help.",
}


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return responses(_DESCRIPTIONS, *codes)


def _sse_content(description: str) -> dict[str, Any]:
    return {SSE_MEDIA_TYPE: {"schema": {"type": "string", "description": description}}}


_SSE_DOC = (
    "With `Accept: text/event-stream` the same URL streams Server-Sent Events: it catches up from "
    "`{start}` (or `Last-Event-ID`, which takes precedence), then stays live. Each message has "
    "`id:` (the {unit}), `event:` (the event type) and `data:` (the event object); comments are "
    "heartbeats."
)

StreamName = Annotated[
    str,
    Path(min_length=1, max_length=MAX_STREAM_NAME_LENGTH, pattern=NAME_PATTERN, description="like order-42"),
]
CategoryName = Annotated[
    str,
    Path(min_length=1, max_length=MAX_STREAM_NAME_LENGTH, pattern=CATEGORY_PATTERN, description="like order"),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="events to return, 1..1000")]
After = Annotated[
    int, Query(ge=0, le=MAX_SAFE_POSITION, description="return events after this global position")
]
LastEventId = Annotated[
    str | None,
    Header(
        description="SSE only: resume after this id (a browser sends it when it reconnects)",
    ),
]
AtLeast = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_SAFE_POSITION,
        description="read your writes: first wait (bounded) until the database read from has the "
        "append at this position (a hot standby behind the primary); 503, retryable, if it does not",
    ),
]
AtLeastHeader = Annotated[
    str | None, Header(alias="Ilji-At-Least", description="the same as the `at_least` query parameter")
]


async def reader_of(request: Request, at_least: int | None, header: str | None) -> PostgresEventStore:
    """The store reads are served from (a hot standby when configured), once it has `at_least`."""
    reader = store_of(request).reader
    if at_least is None and header is not None:
        value = header.strip()
        if not value.isascii() or not value.isdigit() or int(value) > MAX_SAFE_POSITION:
            raise ValidationError("Ilji-At-Least", "must be a global position, like 3125248")
        at_least = int(value)
    if at_least is not None:
        await reader.wait_replayed(at_least)
    return reader


def store_of(request: Request) -> PostgresEventStore:
    """The store the app serves (opened when the app started)."""
    store: PostgresEventStore = request.app.state.store
    return store


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _expected_from_if_match(header: str) -> ExpectedVersion:
    value = header.strip()
    if value == "*":
        return EXISTS
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isascii() or not value.isdigit() or int(value) > MAX_SAFE_POSITION:
        raise ValidationError("If-Match", 'must be a stream version, like 3 or "3", or *')
    return int(value)


def _etag(version: int) -> str:
    return f'"{version}"'


def _sse(
    request: Request, source: AsyncGenerator[RecordedEvent, None], feed: str, by_version: bool
) -> Response:
    settings = request.app.state.settings
    return sse_response(
        source,
        (lambda e: e.version) if by_version else (lambda e: e.position),
        feed=feed,
        metrics=_metrics(request),
        heartbeat=settings.sse_heartbeat,
        queue_size=settings.sse_queue_size,
        draining=request.app.state.drain.event,
        slots=request.app.state.sse_slots,
    )


class _NameConvertor(Convertor[str]):
    """Any text as a path parameter: slashes, newlines, even nothing.

    Starlette's `path` convertor (`.*`) stops at a newline and `str` at a slash, so such
    names would get a bare 404 from the router; matching them instead lets the routes answer
    with a 400 that says what is wrong with the name.
    """

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        """The name as it is."""
        return value

    def to_string(self, value: str) -> str:
        """The name as it is."""
        return value


register_url_convertor("ilji_name", _NameConvertor())


class _PlainRoute(Route):
    """A Starlette route that, like FastAPI's, names itself in the scope (for the metrics label)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Match as Starlette does, and record this route in the child scope."""
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def _location(result: AppendResult) -> str:
    # RFC 9110: a 201 names what it created; here, the stream read from the batch's first event.
    return f"/v1/streams/{quote(result.stream, safe='')}?from_version={result.first_version}"


def _result_json(result: AppendResult) -> dict[str, Any]:
    return {
        "stream": result.stream,
        "first_version": result.first_version,
        "last_version": result.last_version,
        "first_position": result.first_position,
        "last_position": result.last_position,
    }


def append_operation(auth: bool) -> dict[str, Any]:
    """The OpenAPI operation of POST /v1/streams/{stream}, written out (see `build_router`)."""
    response_schema = {"$ref": "#/components/schemas/AppendResponse"}
    etag = {"ETag": {"description": "the stream's version after the append", "schema": {"type": "string"}}}
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
                    **etag,
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
                "headers": etag,
                "content": {"application/json": {"schema": response_schema}},
            },
            **{str(code): doc for code, doc in _problems(*codes).items()},
        },
    }


def add_routes(app: FastAPI, auth: bool) -> None:
    """Add the v1 routes to `app`; `auth` adds the 401/403 answers to the documentation."""
    # Straight onto the app's router: include_router() would wrap the routes (and copy the
    # plain append route into another class), hiding them from `problems._allowed_methods`.
    router = app.router
    auth_codes = (401, 403) if auth else ()

    # Appending is the hot path, so it is a plain Starlette route: it reads and validates its
    # body itself (pydantic's JSON parser, straight from bytes) and skips FastAPI's parameter
    # machinery, which cost about as much CPU per request as the database call. FastAPI does
    # not document plain routes: `append_operation` does, and the app merges it into the
    # OpenAPI document.
    check_write = require(Role.WRITE)

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
        precondition = if_match is not None
        if if_match is not None:
            from_header = _expected_from_if_match(if_match)
            if "expected_version" in body.model_fields_set and from_header != expected:
                raise ValidationError("If-Match", "disagrees with expected_version in the body")
            expected = from_header
        events = [
            NewEvent(type=e.type, data=e.data, metadata=e.metadata, id=e.id or new_event_id())
            for e in body.events
        ]
        metrics = _metrics(request)
        try:
            result = await store_of(request).append(stream, events, expected)
        except IljiError as exc:
            metrics.appends.labels(exc.code).inc()
            if isinstance(exc, ConflictError):
                metrics.conflicts.labels(exc.code).inc()
            if precondition and isinstance(exc, WrongExpectedVersion):
                # RFC 9110: a failed If-Match is 412; the body's expected_version stays 409.
                raise PreconditionFailed.of(exc) from None
            raise
        if result.idempotent:
            metrics.appends.labels("idempotent").inc()
        else:
            metrics.appends.labels("stored").inc()
            metrics.events_appended.inc(len(events))
        return OrjsonResponse(
            _result_json(result),
            status_code=200 if result.idempotent else 201,
            headers={"ETag": _etag(result.last_version), "Location": _location(result)},
        )

    router.routes.append(_PlainRoute("/v1/streams/{stream:ilji_name}", append, methods=["POST"]))

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
            **_problems(400, *auth_codes, 409, 413, 422, 503, 507),
        },
        tags=["streams"],
    )
    async def append_streams(request: Request, body: MultiAppendRequest) -> Response:
        """Append every part (a stream, its events, its expected version) in one transaction, or
        none. A problem names the failing part: `part` (its index), `stream`, and for a wrong
        expected version `expected` and `actual`."""
        parts = [
            (
                part.stream,
                [
                    NewEvent(type=e.type, data=e.data, metadata=e.metadata, id=e.id or new_event_id())
                    for e in part.events
                ],
                validate_expected_version(part.expected_version),
            )
            for part in body.parts
        ]
        metrics = _metrics(request)
        try:
            results = await store_of(request).append_streams(parts)
        except IljiError as exc:
            metrics.appends.labels(exc.code).inc()
            if isinstance(exc, ConflictError):
                metrics.conflicts.labels(exc.code).inc()
            raise
        idempotent = all(r.idempotent for r in results)
        if idempotent:
            metrics.appends.labels("idempotent").inc()
        else:
            metrics.appends.labels("stored").inc()
            metrics.events_appended.inc(sum(len(events) for _, events, _ in parts))
        return OrjsonResponse(
            {"parts": [_result_json(r) for r in results]}, status_code=200 if idempotent else 201
        )

    # Ilji's own streams and categories ($audit: who did which admin action) are for admins.
    check_admin = require(Role.ADMIN)

    @router.get(
        "/v1/streams/{stream:ilji_name}",
        summary="Read a stream (JSON), or follow it (SSE)",
        response_model=StreamPage,
        dependencies=[Depends(require(Role.READ))],
        responses={
            200: {
                "description": "The events; `ETag` is the stream's version. "
                + _SSE_DOC.format(start="from_version", unit="event's version"),
                "content": _sse_content("SSE messages whose ids are stream versions"),
            },
            **_problems(400, *auth_codes, 404, 422, 503),
        },
        tags=["streams"],
    )
    async def read_stream(
        request: Request,
        stream: StreamName,
        from_version: Annotated[
            int | None,
            Query(ge=0, le=MAX_SAFE_POSITION, description="first version (forward: 1; backward: the newest)"),
        ] = None,
        limit: Limit = 100,
        direction: Annotated[
            Literal["forward", "backward"], Query(description="forward: oldest first; backward: newest first")
        ] = "forward",
        last_event_id: LastEventId = None,
        at_least: AtLeast = None,
        at_least_header: AtLeastHeader = None,
    ) -> Response:
        """A stream's events from `from_version`, oldest or newest first. Ilji's own streams
        (names starting with $, like $audit) need an admin token."""
        if stream.startswith("$"):
            await check_admin(request)
        store = await reader_of(request, at_least, at_least_header)
        if wants_sse(request.headers.get("accept")):
            validate_stream_name(stream, allow_system=True)
            resume = parse_last_event_id(last_event_id)
            after = resume if resume is not None else max((from_version or 1) - 1, 0)
            return _sse(request, follow_stream(store, stream, after), "stream", by_version=True)
        events = await store.read_stream(stream, from_version, limit, direction)
        version = await store.stream_version(stream)
        if version == 0:
            raise StreamNotFound(stream)
        if not events:  # only then: is it soft-deleted? (docs/en/lifecycle.md)
            (await store.stream_lifecycle(stream)).check_readable()
        return OrjsonResponse(
            {"stream": stream, "version": version, "events": [event_json(e) for e in events]},
            headers={"ETag": _etag(version)},
        )

    @router.get(
        "/v1/all",
        summary="Read the global log (JSON), or follow it (SSE)",
        response_model=LogPage,
        dependencies=[Depends(require(Role.READ))],
        responses={
            200: {
                "description": "A page of events in global order. "
                + _SSE_DOC.format(start="after", unit="global position"),
                "content": _sse_content("SSE messages whose ids are global positions"),
            },
            **_problems(400, *auth_codes, 422, 503),
        },
        tags=["log"],
    )
    async def read_all(
        request: Request,
        after: After = 0,
        limit: Limit = 100,
        last_event_id: LastEventId = None,
        at_least: AtLeast = None,
        at_least_header: AtLeastHeader = None,
    ) -> Response:
        """Events after position `after`; an empty page means caught up, and then `next` equals `after`."""
        store = await reader_of(request, at_least, at_least_header)
        if wants_sse(request.headers.get("accept")):
            resume = parse_last_event_id(last_event_id)
            return _sse(request, _follow(store, resume if resume is not None else after, None), "all", False)
        events = await store.read_all(after, limit)
        return _page(events, after)

    @router.get(
        "/v1/categories/{category:ilji_name}",
        summary="Read a category (JSON), or follow it (SSE)",
        response_model=LogPage,
        dependencies=[Depends(require(Role.READ))],
        responses={
            200: {
                "description": "A page of the events of streams named `{category}-...` (or `{category}`). "
                + _SSE_DOC.format(start="after", unit="global position"),
                "content": _sse_content("SSE messages whose ids are global positions"),
            },
            **_problems(400, *auth_codes, 422, 503),
        },
        tags=["log"],
    )
    async def read_category(
        request: Request,
        category: CategoryName,
        after: After = 0,
        limit: Limit = 100,
        last_event_id: LastEventId = None,
        at_least: AtLeast = None,
        at_least_header: AtLeastHeader = None,
    ) -> Response:
        """Like /v1/all, for the streams of one category (the part of a stream name before the first -).

        Ilji's own categories (starting with $, like $audit) need an admin token."""
        validate_category(category)
        if category.startswith("$"):
            await check_admin(request)
        store = await reader_of(request, at_least, at_least_header)
        if wants_sse(request.headers.get("accept")):
            resume = parse_last_event_id(last_event_id)
            start = resume if resume is not None else after
            return _sse(request, _follow(store, start, category), "category", False)
        events = await store.read_category(category, after, limit)
        return _page(events, after)

    @router.get(
        "/healthz",
        summary="Liveness: the process answers (no database call)",
        response_model=Health,
        tags=["operations"],
    )
    async def healthz() -> Response:
        """Always 200 while the process runs."""
        return OrjsonResponse({"status": "ok"})

    @router.get(
        "/readyz",
        summary="Readiness: the database answers and its schema is migrated",
        response_model=Health,
        responses=_problems(503),
        tags=["operations"],
    )
    async def readyz(request: Request) -> Response:
        """200 when requests can be served; 503 while the database is away or the server drains."""
        if request.app.state.drain.event.is_set():
            raise StoreUnavailable("the server is shutting down")
        store = store_of(request)
        try:
            async with store.database.connection(timeout=2.0) as conn:
                found = await schema_version(conn)
        except Exception as exc:
            raise translate(exc) from exc
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
            **_problems(*auth_codes),
        },
        tags=["operations"],
    )
    async def metrics(request: Request) -> Response:
        """Request counts and latencies, appends, conflicts, SSE connections, pool usage, transaction age."""
        # On the event loop: the pool collector reads the pool's statistics, which are not
        # meant to be read from another thread. A scrape takes well under a millisecond.
        return Response(generate_latest(_metrics(request).registry), media_type=CONTENT_TYPE_LATEST)


async def _follow(
    store: PostgresEventStore, after: int, category: str | None
) -> AsyncGenerator[RecordedEvent, None]:
    async for event in store.follow(after, category=category, batch_size=100):
        yield event


def _page(events: list[RecordedEvent], after: int) -> Response:
    return OrjsonResponse(
        {"events": [event_json(e) for e in events], "next": events[-1].position if events else after}
    )
