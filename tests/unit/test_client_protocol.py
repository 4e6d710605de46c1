"""`ilji.client` without a server: problems become the library's exceptions, retries, SSE parsing.

The HTTP answers here are what the server sends (tests/e2e/test_client.py talks to a real one).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

import ilji.client
from ilji import (
    DuplicateEventId,
    NewEvent,
    StoreUnavailable,
    StreamDeleted,
    StreamNotFound,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.client import AsyncClient, Client, Forbidden, HttpError, RateLimited, Unauthorized
from ilji.client.errors import error_of
from ilji.client.protocol import Backoff, Feed, SseParser

EVENT = {
    "id": "0190f3a2-7c1e-7d3b-9a4e-5f6a7b8c9d0e",
    "stream": "order-1",
    "version": 1,
    "position": 4096,
    "type": "OrderPlaced",
    "data": {"n": 1},
    "metadata": {},
    "recorded_at": "2026-03-01T09:30:00.123456Z",
}
STORED = {
    "stream": "order-1",
    "first_version": 1,
    "last_version": 1,
    "first_position": 4096,
    "last_position": 4096,
}


def problem(status: int, kind: str, detail: str = "it went wrong", **extra: Any) -> httpx.Response:
    body = {"type": f"urn:ilji:problem:{kind}", "title": "x", "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def test_public_api_is_curated() -> None:
    assert sorted(ilji.client.__all__) == [
        "AsyncClient",
        "AsyncSubscription",
        "Client",
        "Forbidden",
        "HttpError",
        "LogPage",
        "RateLimited",
        "StreamPage",
        "Subscription",
        "Unauthorized",
    ]


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (problem(409, "wrong-expected-version", expected=0, actual=3), WrongExpectedVersion),
        (problem(409, "duplicate-event-id", event_ids=["a"]), DuplicateEventId),
        (problem(400, "validation-error", errors=[{"field": "stream", "message": "bad"}]), ValidationError),
        (
            problem(422, "validation-error", errors=[{"field": "body.events", "message": "?"}]),
            ValidationError,
        ),
        (problem(413, "request-entity-too-large"), ValidationError),
        (problem(404, "stream-not-found"), StreamNotFound),
        (problem(404, "stream-deleted", deleted_version=4), StreamDeleted),
        (problem(503, "store-unavailable"), StoreUnavailable),
        (problem(503, "too-many-streams"), StoreUnavailable),
        (problem(401, "unauthorized"), Unauthorized),
        (problem(403, "forbidden"), Forbidden),
        (problem(429, "too-many-requests"), RateLimited),
        (problem(504, "wait-timeout"), HttpError),
        (httpx.Response(502, text="<html>bad gateway</html>"), HttpError),
    ],
)
def test_problems_become_the_library_exceptions(response: httpx.Response, kind: type[Exception]) -> None:
    exc = error_of(response, stream="order-1")
    assert type(exc) is kind
    assert str(exc)


def test_problem_details_are_kept() -> None:
    exc = error_of(problem(409, "wrong-expected-version", "stream is at 3", expected=0, actual=3), "order-1")
    assert isinstance(exc, WrongExpectedVersion)
    assert (exc.stream, exc.expected, exc.actual, exc.message) == ("order-1", 0, 3, "stream is at 3")
    bad = error_of(problem(400, "validation-error", errors=[{"field": "stream", "message": "bad"}]))
    assert isinstance(bad, ValidationError) and bad.field == "stream"
    limited = error_of(httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "7"}))
    assert isinstance(limited, RateLimited) and limited.retry_after == 7


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that gives `answers` in order (an exception is raised as a network error)."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def test_an_append_is_retried_with_the_same_ids_after_network_errors_and_503() -> None:
    transport, seen = scripted(
        httpx.ConnectError("refused"),
        problem(503, "store-unavailable"),
        httpx.ReadError("reset"),
        httpx.Response(200, json=STORED),  # the earlier attempt was stored: an idempotent retry
    )
    with Client(transport=transport, backoff=0.001) as client:
        result = client.append("order-1", [NewEvent("OrderPlaced", {"n": 1})], expected_version=0)
    assert result.idempotent and result.last_version == 1
    bodies = [json.loads(r.content) for r in seen]
    assert len(bodies) == 4
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["expected_version"] == 0
    assert uuid.UUID(bodies[0]["events"][0]["id"])


def test_retries_end_with_store_unavailable_and_conflicts_are_not_retried() -> None:
    transport, seen = scripted(*[httpx.ConnectError("refused")] * 3)
    with Client(transport=transport, retries=2, backoff=0.001) as client, pytest.raises(StoreUnavailable):
        client.read_all()
    assert len(seen) == 3
    transport, seen = scripted(problem(409, "wrong-expected-version", expected=0, actual=1))
    with Client(transport=transport, backoff=0.001) as client, pytest.raises(WrongExpectedVersion):
        client.append("order-1", [NewEvent("X")], expected_version=0)
    assert len(seen) == 1


async def test_the_async_client_retries_too() -> None:
    answers = [httpx.ConnectError("refused"), httpx.Response(201, json=STORED)]

    async def handle(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with AsyncClient(transport=httpx.MockTransport(handle), backoff=0.001) as client:
        result = await client.append("order-1", [NewEvent("OrderPlaced")])
    assert not result.idempotent and result.first_position == 4096


def test_token_and_accept_headers() -> None:
    transport, seen = scripted(httpx.Response(200, json={"events": [EVENT], "next": 4096}))
    with Client(transport=transport, token="s3cret") as client:
        page = client.read_category("order", after=7, limit=5)
    assert seen[0].headers["authorization"] == "Bearer s3cret"
    assert seen[0].url.path == "/v1/categories/order"
    assert dict(seen[0].url.params) == {"after": "7", "limit": "5"}
    assert page.next == 4096 and page.events[0].data == {"n": 1}
    assert page.events[0].id == uuid.UUID(EVENT["id"])


def test_sse_parser_reads_ids_multiline_data_and_skips_heartbeats() -> None:
    parser = SseParser()
    text = json.dumps(EVENT, indent=1)  # a JSON value over several data lines
    data = [f"data: {part}" for part in text.split("\n")]
    lines = [": ok", "", "id: 4096", "event: OrderPlaced", *data, ""]
    out = [m for m in (parser.feed(line) for line in lines) if m is not None]
    assert len(out) == 1
    ident, event = out[0]
    assert ident == 4096 and event.type == "OrderPlaced" and event.version == 1


def test_a_feed_hands_out_each_event_once_and_backs_off() -> None:
    feed = Feed("/v1/all", 4096, Backoff(initial=0.1, maximum=0.4))
    message = ["id: 4096", f"data: {json.dumps(EVENT)}", ""]
    assert [feed.line(line) for line in message] == [None, None, None]  # at or before last_id
    later = {**EVENT, "position": 8192}
    got = [feed.line(line) for line in ["id: 8192", f"data: {json.dumps(later)}", ""]]
    assert got[-1] is not None and feed.last_id == 8192
    assert feed.headers()["Last-Event-ID"] == "8192"
    waits = [feed.lost() for _ in range(5)]
    assert all(0.05 <= w <= 0.4 for w in waits) and feed.reconnects == 5
    retry = feed.opened(httpx.Response(503, headers={"Retry-After": "5"}))
    assert retry == 0.4  # the server's advice, capped by the backoff's maximum
    with pytest.raises(Forbidden):
        feed.opened(problem(403, "forbidden"))
