"""`Client`: the blocking HTTP client of `ilji serve`, and its `Subscription`s.

with Client("http://127.0.0.1:8000", token="...") as ilji:
    ilji.append("order-42", [NewEvent("OrderPlaced", {"sku": "tea"})], expected_version=0)
    for event in ilji.subscribe_all():
        ...
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from ilji.client.protocol import (
    JSON,
    Backoff,
    Call,
    Direction,
    Feed,
    FeedProgress,
    Feeds,
    LogPage,
    Retries,
    StreamPage,
    append_call,
    finish,
    read_log_call,
    read_stream_call,
)
from ilji.domain.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent

T = TypeVar("T")


class Client(Feeds["Subscription", Iterator[RecordedEvent]]):
    """A connection pool to one Ilji server; thread-safe like `httpx.Client`. Close it (or use
    `with`) when done.

    `token`: a bearer token from the server's ILJI_API_TOKENS. `timeout`: seconds for each
    connect, read and write. `retries`: how many times a call is sent again after a network
    error, a 503 or a 429, waiting `backoff` seconds at first and doubling up to `max_backoff`
    (safe for every call: see `Retries`). `sse_timeout`: seconds of silence (not even a
    heartbeat) after which a subscription reconnects. `transport`: an httpx transport, for tests.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        sse_timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self._retries = retries
        self._backoff = (backoff, max_backoff)
        self._sse_timeout = httpx.Timeout(timeout, read=sse_timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        retries = Retries(self._retries, Backoff(*self._backoff))
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = self._http.request(
                    call.method, call.path, params=call.params, json=call.json, headers={"Accept": JSON}
                )
            except httpx.TransportError as exc:
                outcome = exc
            wait = retries.after(outcome)
            if wait is None:
                return finish(call, outcome)
            time.sleep(wait)

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append `events` atomically if `stream` is at `expected_version`.

        Raises `WrongExpectedVersion`, `DuplicateEventId`, `ValidationError`, and
        `StoreUnavailable` when the server could not be reached after the retries."""
        return self._send(append_call(stream, events, expected_version))

    def read_stream(
        self, stream: str, from_version: int | None = None, limit: int = 100, direction: Direction = "forward"
    ) -> StreamPage:
        """A page of `stream` (`StreamNotFound` when it has no events)."""
        return self._send(read_stream_call(stream, from_version, limit, direction))

    def iter_stream(
        self, stream: str, from_version: int = 1, page_size: int = 500
    ) -> Iterator[RecordedEvent]:
        """Every event of `stream` from `from_version`, page by page, oldest first."""
        while True:
            page = self.read_stream(stream, from_version, page_size)
            yield from page.events
            if len(page.events) < page_size:
                return
            from_version = page.events[-1].version + 1

    def read_all(self, after: int = 0, limit: int = 100) -> LogPage:
        """A page of the global log after position `after`."""
        return self._send(read_log_call(None, after, limit))

    def read_category(self, category: str, after: int = 0, limit: int = 100) -> LogPage:
        """A page of the events of streams `{category}-…` after position `after`."""
        return self._send(read_log_call(category, after, limit))

    def _pages(self, category: str | None, after: int, page_size: int) -> Iterator[RecordedEvent]:
        while True:
            page = self._send(read_log_call(category, after, page_size))
            yield from page.events
            if not page.events:
                return
            after = page.next

    def _subscribe(self, path: str, after: int) -> Subscription:
        return Subscription(self._http, Feed(path, after, Backoff(*self._backoff)), self._sse_timeout)


class Subscription(FeedProgress, Iterator[RecordedEvent]):
    """An endless iterator of events over SSE that reconnects by itself.

    When the connection breaks, the server restarts or drains, or answers 503, it waits
    (exponential backoff with jitter) and reconnects with `Last-Event-ID`: the events go on
    after the last one handed out, none lost, none twice. `last_id` is that event's position
    (its version for a stream's feed); `reconnects` counts the reconnections. A refused token or
    a bad name raises. `close()` (or `with`) ends it.
    """

    def __init__(self, http: httpx.Client, feed: Feed, timeout: httpx.Timeout) -> None:
        self._http = http
        self._feed = feed
        self._timeout = timeout
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._closed = False

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop: close the connection; iterating ends."""
        self._closed = True
        self._drop()

    def _drop(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = self._lines = None

    def _connect(self) -> bool:
        request = self._http.build_request(
            "GET", self._feed.path, headers=self._feed.headers(), timeout=self._timeout
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError:
            time.sleep(self._feed.lost())
            return False
        try:
            if not response.is_success:
                response.read()
            wait = self._feed.opened(response)
        except BaseException:
            response.close()
            raise
        if wait is not None:
            response.close()
            time.sleep(wait)
            return False
        self._response, self._lines = response, response.iter_lines()
        return True

    def __next__(self) -> RecordedEvent:
        while not self._closed:
            if self._lines is None and not self._connect():
                continue
            assert self._lines is not None
            try:
                for line in self._lines:
                    event = self._feed.line(line)
                    if event is not None:
                        return event
            except httpx.TransportError:
                pass
            self._drop()
            if not self._closed:
                time.sleep(self._feed.lost())
        raise StopIteration
