"""What the sync and the async client share, with no I/O: requests, answers, SSE, backoff.

`Client` and `AsyncClient` only send what this module builds and hand back what it parses,
so both speak exactly the same HTTP.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

from ilji.client.errors import error_of, retry_after
from ilji.domain.errors import StoreUnavailable
from ilji.domain.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent, StreamState

T = TypeVar("T")
S = TypeVar("S")
P = TypeVar("P")

SSE = "text/event-stream"
JSON = "application/json"

#: Answers a request may be sent again after: the server was busy or restarting (503), or
#: this client was over its rate (429). Nothing was done in either case.
RETRY_STATUSES = frozenset({429, 503})

Direction = Literal["forward", "backward"]


@dataclass(frozen=True, slots=True)
class StreamPage:
    """A page of one stream: `version` is the stream's version when it was read."""

    stream: str
    version: int
    events: list[RecordedEvent]


@dataclass(frozen=True, slots=True)
class LogPage:
    """A page of the global log or a category: read on `after=next`; empty when caught up."""

    events: list[RecordedEvent]
    next: int


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    stream: str | None = None
    """The stream the request is about, for the exceptions' `stream`."""


@dataclass
class Backoff:
    """Exponential backoff with full jitter: `next()` is the wait before the next attempt."""

    initial: float = 0.1
    maximum: float = 5.0
    attempt: int = 0

    def next(self) -> float:
        """The next wait in seconds (random, so many clients do not come back at once)."""
        ceiling = min(self.maximum, self.initial * 2**self.attempt)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from the initial wait (after a success)."""
        self.attempt = 0


def segment(name: str) -> str:
    """A stream or category name as one URL path segment."""
    return quote(name, safe="")


def expected_json(expected: ExpectedVersion) -> int | str:
    """An expected version as the API writes it: a number, or any / no_stream / exists."""
    return expected.value if isinstance(expected, StreamState) else expected


def event_of(raw: dict[str, Any]) -> RecordedEvent:
    """A `RecordedEvent` from the API's event object."""
    return RecordedEvent(
        id=uuid.UUID(raw["id"]),
        stream=raw["stream"],
        version=int(raw["version"]),
        position=int(raw["position"]),
        type=raw["type"],
        data=raw.get("data") or {},
        metadata=raw.get("metadata") or {},
        recorded_at=datetime.fromisoformat(raw["recorded_at"]),
    )


def append_call(
    stream: str, events: Sequence[NewEvent], expected: ExpectedVersion = ANY
) -> Call[AppendResult]:
    """POST /v1/streams/{stream}. Every event carries its id, so sending it again is safe."""
    body = {
        "expected_version": expected_json(expected),
        "events": [
            {"id": str(e.id), "type": e.type, "data": dict(e.data), "metadata": dict(e.metadata)}
            for e in events
        ],
    }

    def parse(response: httpx.Response) -> AppendResult:
        raw = response.json()
        return AppendResult(
            stream=raw["stream"],
            first_version=raw["first_version"],
            last_version=raw["last_version"],
            first_position=raw["first_position"],
            last_position=raw["last_position"],
            idempotent=response.status_code == 200,
        )

    return Call("POST", f"/v1/streams/{segment(stream)}", parse, json=body, stream=stream)


def read_stream_call(
    stream: str, from_version: int | None, limit: int, direction: Direction
) -> Call[StreamPage]:
    """GET /v1/streams/{stream} as JSON."""
    params: dict[str, Any] = {"limit": limit, "direction": direction}
    if from_version is not None:
        params["from_version"] = from_version

    def parse(response: httpx.Response) -> StreamPage:
        raw = response.json()
        return StreamPage(raw["stream"], raw["version"], [event_of(e) for e in raw["events"]])

    return Call("GET", f"/v1/streams/{segment(stream)}", parse, params=params, stream=stream)


def _log_page(response: httpx.Response) -> LogPage:
    raw = response.json()
    return LogPage([event_of(e) for e in raw["events"]], raw["next"])


def read_log_call(category: str | None, after: int, limit: int) -> Call[LogPage]:
    """GET /v1/all, or /v1/categories/{category}, as JSON."""
    path = "/v1/all" if category is None else f"/v1/categories/{segment(category)}"
    return Call("GET", path, _log_page, params={"after": after, "limit": limit})


def feed_path(*, stream: str | None = None, category: str | None = None) -> str:
    """The URL of an SSE feed: a stream's, a category's, or the global log's."""
    if stream is not None:
        return f"/v1/streams/{segment(stream)}"
    if category is not None:
        return f"/v1/categories/{segment(category)}"
    return "/v1/all"


def feed_headers(last_id: int) -> dict[str, str]:
    """Headers of an SSE request resuming after `last_id` (a version or a position)."""
    return {"Accept": SSE, "Last-Event-ID": str(last_id), "Cache-Control": "no-cache"}


def network_error(exc: httpx.HTTPError) -> StoreUnavailable:
    """A failure to reach the server, as the library says "try again later"."""
    return StoreUnavailable(f"the Ilji server did not answer: {type(exc).__name__}: {exc}")


Outcome = httpx.Response | httpx.TransportError
"""What an attempt got: an answer, or a network error (nothing, or only part, came back)."""


@dataclass
class Retries:
    """When to send a request again: after a network error, a 503 or a 429, at most `retries` times.

    Safe for every call of the client: reads change nothing, and an append carries its
    events' ids, so if the first attempt was stored and only its answer was lost, the store
    recognises the retry and answers with the same result (200 instead of 201).
    """

    retries: int
    backoff: Backoff
    attempt: int = 0

    def after(self, outcome: Outcome) -> float | None:
        """The wait before the next attempt, or None: `finish` the call with this outcome."""
        if self.attempt >= self.retries:
            return None
        if isinstance(outcome, httpx.Response) and outcome.status_code not in RETRY_STATUSES:
            return None
        self.attempt += 1
        wait = self.backoff.next()
        if isinstance(outcome, httpx.Response):
            wait = max(wait, min(retry_after(outcome, 0.0), self.backoff.maximum))
        return wait


def finish(call: Call[T], outcome: Outcome) -> T:
    """The call's result, or the exception its outcome means."""
    if isinstance(outcome, httpx.TransportError):
        raise network_error(outcome) from outcome
    if outcome.is_success:
        return call.parse(outcome)
    raise error_of(outcome, call.stream)


class Feed:
    """A subscription's state: where it is (`last_id`), how long to wait before reconnecting.

    The I/O loops of `Subscription` and `AsyncSubscription` ask it what to do: `opened` with
    each answer to a (re)connection, `line` with each line of the body, `lost` when the
    connection failed or ended. An event is handed out only once: after a reconnection the
    server resumes after `Last-Event-ID`, and anything at or before it is skipped anyway.
    """

    def __init__(self, path: str, last_id: int, backoff: Backoff) -> None:
        self.path = path
        self.last_id = last_id
        self.backoff = backoff
        self.reconnects = 0
        self._parser = SseParser()

    def headers(self) -> dict[str, str]:
        """The headers of the next connection."""
        return feed_headers(self.last_id)

    def opened(self, response: httpx.Response) -> float | None:
        """None to read this answer's events; a wait to reconnect after (503, 429); raises on
        an answer that will not get better by waiting (a refused token, a bad name). The
        caller has read the body of an error answer."""
        if response.is_success:
            self._parser = SseParser()
            return None
        if response.status_code in RETRY_STATUSES:
            return max(self.backoff.next(), min(retry_after(response, 0.0), self.backoff.maximum))
        raise error_of(response)

    def line(self, line: str) -> RecordedEvent | None:
        """The event this line completes, if any (and not seen before)."""
        message = self._parser.feed(line)
        if message is None:
            return None
        ident, event = message
        if ident <= self.last_id:
            return None
        self.last_id = ident
        self.backoff.reset()
        return event

    def lost(self) -> float:
        """The connection failed or ended: the wait before reconnecting."""
        self.reconnects += 1
        return self.backoff.next()


class SseParser:
    """Server-Sent Events, one line at a time: `feed(line)` returns a message once it is complete.

    Only what Ilji's feeds use: `id`, `event`, `data` (possibly on several lines); comments
    (heartbeats) are skipped.
    """

    def __init__(self) -> None:
        self._id: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[int, RecordedEvent] | None:
        """Take one line (without its line break); a (id, event) pair at the end of a message."""
        if line == "":
            if not self._data:
                return None
            raw = json.loads("\n".join(self._data))
            ident = int(self._id) if self._id is not None else int(raw["position"])
            self._id, self._data = None, []
            return ident, event_of(raw)
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


class Feeds(Generic[S, P]):
    """The calls `Client` and `AsyncClient` share word for word: subscriptions (of type `S`)
    and log iterators (of type `P`), built by each one's `_subscribe` and `_pages`."""

    def _subscribe(self, path: str, after: int) -> S:
        raise NotImplementedError

    def _pages(self, category: str | None, after: int, page_size: int) -> P:
        raise NotImplementedError

    def iter_all(self, after: int = 0, page_size: int = 500) -> P:
        """The global log after `after`, page by page, up to where it is now."""
        return self._pages(None, after, page_size)

    def iter_category(self, category: str, after: int = 0, page_size: int = 500) -> P:
        """A category after `after`, page by page, up to where it is now."""
        return self._pages(category, after, page_size)

    def subscribe_all(self, after: int = 0) -> S:
        """Every event after position `after`, then new ones as they come, for ever (see `Subscription`)."""
        return self._subscribe(feed_path(), after)

    def subscribe_category(self, category: str, after: int = 0) -> S:
        """Like `subscribe_all`, for one category."""
        return self._subscribe(feed_path(category=category), after)

    def subscribe_stream(self, stream: str, after_version: int = 0) -> S:
        """The events of `stream` after `after_version`, then new ones as they come."""
        return self._subscribe(feed_path(stream=stream), after_version)


class FeedProgress:
    """Where a subscription is: what `Subscription` and `AsyncSubscription` report."""

    _feed: Feed

    @property
    def last_id(self) -> int:
        """The id of the last event handed out (the starting point before the first)."""
        return self._feed.last_id

    @property
    def reconnects(self) -> int:
        """How many times the connection was lost and made again."""
        return self._feed.reconnects
