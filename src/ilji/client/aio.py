"""`AsyncClient`: the asyncio HTTP client of `ilji serve`, and its `AsyncSubscription`s.

The same calls as `Client`, awaited:

    async with AsyncClient("http://127.0.0.1:8000", token="...") as ilji:
        await ilji.append("order-42", [NewEvent("OrderPlaced", {"sku": "tea"})], expected_version=0)
        async for event in ilji.subscribe_all():
            ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
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


class AsyncClient(Feeds["AsyncSubscription", AsyncIterator[RecordedEvent]]):
    """A connection pool to one Ilji server, for asyncio; the options are `Client`'s. Close it
    (or use `async with`) when done."""

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._retries = retries
        self._backoff = (backoff, max_backoff)
        self._sse_timeout = httpx.Timeout(timeout, read=sse_timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        retries = Retries(self._retries, Backoff(*self._backoff))
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json, headers={"Accept": JSON}
                )
            except httpx.TransportError as exc:
                outcome = exc
            wait = retries.after(outcome)
            if wait is None:
                return finish(call, outcome)
            await asyncio.sleep(wait)

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append `events` atomically if `stream` is at `expected_version` (see `Client.append`)."""
        return await self._send(append_call(stream, events, expected_version))

    async def read_stream(
        self, stream: str, from_version: int | None = None, limit: int = 100, direction: Direction = "forward"
    ) -> StreamPage:
        """A page of `stream` (`StreamNotFound` when it has no events)."""
        return await self._send(read_stream_call(stream, from_version, limit, direction))

    async def iter_stream(
        self, stream: str, from_version: int = 1, page_size: int = 500
    ) -> AsyncIterator[RecordedEvent]:
        """Every event of `stream` from `from_version`, page by page, oldest first."""
        while True:
            page = await self.read_stream(stream, from_version, page_size)
            for event in page.events:
                yield event
            if len(page.events) < page_size:
                return
            from_version = page.events[-1].version + 1

    async def read_all(self, after: int = 0, limit: int = 100) -> LogPage:
        """A page of the global log after position `after`."""
        return await self._send(read_log_call(None, after, limit))

    async def read_category(self, category: str, after: int = 0, limit: int = 100) -> LogPage:
        """A page of the events of streams `{category}-…` after position `after`."""
        return await self._send(read_log_call(category, after, limit))

    async def _pages(self, category: str | None, after: int, page_size: int) -> AsyncIterator[RecordedEvent]:
        while True:
            page = await self._send(read_log_call(category, after, page_size))
            for event in page.events:
                yield event
            if not page.events:
                return
            after = page.next

    def _subscribe(self, path: str, after: int) -> AsyncSubscription:
        return AsyncSubscription(self._http, Feed(path, after, Backoff(*self._backoff)), self._sse_timeout)


class AsyncSubscription(FeedProgress, AsyncIterator[RecordedEvent]):
    """An endless async iterator of events over SSE that reconnects by itself, like
    `Subscription`. `aclose()` (or `async with`) ends it."""

    def __init__(self, http: httpx.AsyncClient, feed: Feed, timeout: httpx.Timeout) -> None:
        self._http = http
        self._feed = feed
        self._timeout = timeout
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._closed = False

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop: close the connection; iterating ends."""
        self._closed = True
        await self._drop()

    async def _drop(self) -> None:
        if self._response is not None:
            await self._response.aclose()
        self._response = self._lines = None

    async def _connect(self) -> bool:
        request = self._http.build_request(
            "GET", self._feed.path, headers=self._feed.headers(), timeout=self._timeout
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError:
            await asyncio.sleep(self._feed.lost())
            return False
        try:
            if not response.is_success:
                await response.aread()
            wait = self._feed.opened(response)
        except BaseException:
            await response.aclose()
            raise
        if wait is not None:
            await response.aclose()
            await asyncio.sleep(wait)
            return False
        self._response, self._lines = response, response.aiter_lines()
        return True

    async def __anext__(self) -> RecordedEvent:
        while not self._closed:
            if self._lines is None and not await self._connect():
                continue
            assert self._lines is not None
            try:
                async for line in self._lines:
                    event = self._feed.line(line)
                    if event is not None:
                        return event
            except httpx.TransportError:
                pass
            await self._drop()
            if not self._closed:
                await asyncio.sleep(self._feed.lost())
        raise StopAsyncIteration
