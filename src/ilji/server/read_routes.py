"""The read routes of HTTP API v1: a stream, the global log, a category; each as JSON or as SSE.

Each read URL answers with JSON or, for `Accept: text/event-stream`, with a live SSE feed
(`sse`). Reads may be served from a hot standby (`ServerState.store.reader`), after waiting
for it to replay the client's last write (`at_least`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Query, Request
from starlette.responses import Response

from ilji.domain.errors import StreamNotFound, ValidationError
from ilji.domain.events import MAX_SAFE_POSITION, RecordedEvent
from ilji.domain.shapes import event_json
from ilji.domain.validation import validate_category, validate_stream_name
from ilji.server import problem_docs
from ilji.server.auth import Role, require
from ilji.server.models import LogPage, StreamPage
from ilji.server.openapi import api_router
from ilji.server.orjson_response import OrjsonResponse
from ilji.server.paths import CategoryName, StreamName
from ilji.server.preconditions import etag
from ilji.server.sse import SSE_MEDIA_TYPE, follow_stream, parse_last_event_id, sse_response, wants_sse
from ilji.server.state import ServerState, State
from ilji.store.postgres import PostgresEventStore

MAX_LIMIT = 1000

router = api_router(dependencies=[Depends(require(Role.READ))])

# Ilji's own streams and categories ($audit: who did which admin action) are for admins.
check_admin = require(Role.ADMIN)

_SSE_DOC = (
    "With `Accept: text/event-stream` the same URL streams Server-Sent Events: it catches up from "
    "`{start}` (or `Last-Event-ID`, which takes precedence), then stays live. Each message has "
    "`id:` (the {unit}), `event:` (the event type) and `data:` (the event object); comments are "
    "heartbeats."
)

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


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return problem_docs.responses(problem_docs.STREAMS, *codes)


def _sse_content(description: str) -> dict[str, Any]:
    return {SSE_MEDIA_TYPE: {"schema": {"type": "string", "description": description}}}


async def reader_of(server: ServerState, at_least: int | None, header: str | None) -> PostgresEventStore:
    """The store reads are served from (a hot standby when configured), once it has `at_least`."""
    reader = server.store.reader
    if at_least is None and header is not None:
        value = header.strip()
        if not value.isascii() or not value.isdigit() or int(value) > MAX_SAFE_POSITION:
            raise ValidationError("Ilji-At-Least", "must be a global position, like 3125248")
        at_least = int(value)
    if at_least is not None:
        await reader.wait_replayed(at_least)
    return reader


def _sse(
    server: ServerState, source: AsyncGenerator[RecordedEvent, None], feed: str, by_version: bool
) -> Response:
    return sse_response(
        source,
        (lambda e: e.version) if by_version else (lambda e: e.position),
        feed=feed,
        metrics=server.metrics,
        heartbeat=server.settings.sse_heartbeat,
        queue_size=server.settings.sse_queue_size,
        draining=server.drain.event,
        slots=server.sse_slots,
    )


@router.get(
    "/v1/streams/{stream:ilji_name}",
    summary="Read a stream (JSON), or follow it (SSE)",
    response_model=StreamPage,
    responses={
        200: {
            "description": "The events; `ETag` is the stream's version. "
            + _SSE_DOC.format(start="from_version", unit="event's version"),
            "content": _sse_content("SSE messages whose ids are stream versions"),
        },
        **_problems(400, *problem_docs.AUTH_CODES, 404, 422, 503),
    },
    tags=["streams"],
)
async def read_stream(
    request: Request,
    server: State,
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
    store = await reader_of(server, at_least, at_least_header)
    if wants_sse(request.headers.get("accept")):
        validate_stream_name(stream, allow_system=True)
        resume = parse_last_event_id(last_event_id)
        after = resume if resume is not None else max((from_version or 1) - 1, 0)
        return _sse(server, follow_stream(store, stream, after), "stream", by_version=True)
    events = await store.read_stream(stream, from_version, limit, direction)
    version = await store.stream_version(stream)
    if version == 0:
        raise StreamNotFound(stream)
    if not events:  # only then: is it soft-deleted? (docs/en/lifecycle.md)
        (await store.stream_lifecycle(stream)).check_readable()
    return OrjsonResponse(
        {"stream": stream, "version": version, "events": [event_json(e) for e in events]},
        headers={"ETag": etag(version)},
    )


@router.get(
    "/v1/all",
    summary="Read the global log (JSON), or follow it (SSE)",
    response_model=LogPage,
    responses={
        200: {
            "description": "A page of events in global order. "
            + _SSE_DOC.format(start="after", unit="global position"),
            "content": _sse_content("SSE messages whose ids are global positions"),
        },
        **_problems(400, *problem_docs.AUTH_CODES, 422, 503),
    },
    tags=["log"],
)
async def read_all(
    request: Request,
    server: State,
    after: After = 0,
    limit: Limit = 100,
    last_event_id: LastEventId = None,
    at_least: AtLeast = None,
    at_least_header: AtLeastHeader = None,
) -> Response:
    """Events after position `after`; an empty page means caught up, and then `next` equals `after`."""
    store = await reader_of(server, at_least, at_least_header)
    if wants_sse(request.headers.get("accept")):
        resume = parse_last_event_id(last_event_id)
        return _sse(server, _follow(store, resume if resume is not None else after, None), "all", False)
    events = await store.read_all(after, limit)
    return _page(events, after)


@router.get(
    "/v1/categories/{category:ilji_name}",
    summary="Read a category (JSON), or follow it (SSE)",
    response_model=LogPage,
    responses={
        200: {
            "description": "A page of the events of streams named `{category}-...` (or `{category}`). "
            + _SSE_DOC.format(start="after", unit="global position"),
            "content": _sse_content("SSE messages whose ids are global positions"),
        },
        **_problems(400, *problem_docs.AUTH_CODES, 422, 503),
    },
    tags=["log"],
)
async def read_category(
    request: Request,
    server: State,
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
    store = await reader_of(server, at_least, at_least_header)
    if wants_sse(request.headers.get("accept")):
        resume = parse_last_event_id(last_event_id)
        start = resume if resume is not None else after
        return _sse(server, _follow(store, start, category), "category", False)
    events = await store.read_category(category, after, limit)
    return _page(events, after)


async def _follow(
    store: PostgresEventStore, after: int, category: str | None
) -> AsyncGenerator[RecordedEvent, None]:
    async for event in store.follow(after, category=category, batch_size=100):
        yield event


def _page(events: list[RecordedEvent], after: int) -> Response:
    return OrjsonResponse(
        {"events": [event_json(e) for e in events], "next": events[-1].position if events else after}
    )
