"""Server-Sent Events: catch up, then stay live, with heartbeats and a bounded buffer per client.

Each SSE connection has a producer task that reads events from the store into a small
bounded queue, and the response body that takes them out and writes them to the socket.
When a client reads slowly, the socket's buffer fills, the body waits, the queue fills and
the producer waits too: that client falls behind (and catches up from the database later)
but holds no more than the queue in memory and never slows down any other connection.

Open streams are capped per process (`SseSlots`, ILJI_MAX_SSE_CONNECTIONS). Each stream
costs memory, a task, and a database read whenever new events are announced, so a few
hundred idle clients would otherwise turn every append into hundreds of queries. Past the
cap a request gets 503 with `Retry-After`: the server is at capacity, which is what 503
means (429 would blame the client, yet the cap counts everybody's streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ilji.domain.errors import IljiError, StoreUnavailable, ValidationError
from ilji.domain.events import MAX_SAFE_POSITION, RecordedEvent, category_of
from ilji.domain.shapes import event_json
from ilji.domain.validation import validate_category
from ilji.server.metrics import Metrics
from ilji.server.problems import problem
from ilji.store.postgres import PostgresEventStore

log = logging.getLogger(__name__)

SSE_MEDIA_TYPE = "text/event-stream"

# Messages taken from the queue and written in one chunk: fewer, larger socket writes when
# a client is behind, and still one message at a time when it is live.
_MAX_BATCH = 64

# How long a stream whose category cannot be followed waits between polls.
_POLL_INTERVAL = 1.0

_END = object()


class SseSlots:
    """How many SSE streams this process serves at most, and how many are open."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> bool:
        """Take a slot if one is free (one event loop: no lock needed)."""
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        """Free a slot when a stream ends."""
        self.open -= 1


class _SlottedStream(StreamingResponse):
    """A stream that holds a slot while it is sent, or a 503 problem when none is free.

    The slot is taken when the response is sent, not when it is built, so that it is always
    given back: in `__call__`'s `finally`, however the stream ends.
    """

    def __init__(self, slots: SseSlots, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the stream, or 503 when the process serves as many streams as it may."""
        if not self.slots.take():
            await self.body_iterator.aclose()  # type: ignore[attr-defined]
            refusal = problem(
                503,
                f"this server already serves {self.slots.limit} event streams; retry later",
                code="too-many-streams",
                headers={"Retry-After": "5"},
            )
            await refusal(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.give_back()


def wants_sse(accept: str | None) -> bool:
    """True when the `Accept` header asks for an event stream."""
    return bool(accept) and SSE_MEDIA_TYPE in (accept or "").lower()


def parse_last_event_id(value: str | None) -> int | None:
    """The `Last-Event-ID` header as an integer >= 0 (None when absent)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_SAFE_POSITION:
        raise ValidationError("Last-Event-ID", f"must be an integer from 0 to {MAX_SAFE_POSITION}")
    return int(text)


def format_message(event_id: int, event: RecordedEvent) -> bytes:
    """One SSE message. Types hold no whitespace and orjson escapes newlines: one line each."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event_id,
        event.type.encode(),
        orjson.dumps(event_json(event)),
    )


async def follow_stream(
    store: PostgresEventStore, stream: str, after_version: int, *, batch: int = 100
) -> AsyncGenerator[RecordedEvent, None]:
    """Events of one stream with a version above `after_version`: first stored ones, then live ones.

    The store follows the global log and categories but not single streams, so this follows
    the stream's category and keeps the events of this stream. Catch-up reads the stream by
    version (cheap, indexed); the category is then followed from the position of the last
    event seen. Within a stream, positions grow with versions, so no event of the stream can
    appear in the category before that position. A stream with no events yet has no position
    to start from, so its category is followed from the beginning (one pass over the
    category's history, after which it is live like any other).
    """
    version = after_version
    position = 0
    if version > 0:
        # Resuming: find where the last seen event sits in the global log.
        seen = await _read(store, stream, version, 1)
        if seen:
            position = seen[0].position
    while True:
        page = await _read(store, stream, version + 1, batch)
        for event in page:
            version, position = event.version, event.position
            yield event
        if len(page) < batch:
            break
    category = category_of(stream)
    try:
        validate_category(category)
    except ValidationError:
        # A name like "-x" has an empty category, which cannot be followed: poll instead.
        async for event in _poll_stream(store, stream, version, batch):
            yield event
        return
    async for event in store.follow(position, category=category, batch_size=batch):
        if event.stream == stream and event.version > version:
            version = event.version
            yield event


async def _poll_stream(
    store: PostgresEventStore, stream: str, version: int, batch: int
) -> AsyncGenerator[RecordedEvent, None]:
    while True:
        page = await _read(store, stream, version + 1, batch)
        for event in page:
            version = event.version
            yield event
        if len(page) < batch:
            await asyncio.sleep(_POLL_INTERVAL)


async def _read(store: PostgresEventStore, stream: str, from_version: int, limit: int) -> list[RecordedEvent]:
    # A live subscription outlives database restarts: wait and read again, like store.follow.
    delay = 0.1
    while True:
        try:
            return await store.read_stream(stream, from_version, limit)
        except StoreUnavailable as exc:
            log.warning("sse: database unavailable, retrying", extra={"error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def sse_response(
    source: AsyncGenerator[RecordedEvent, None],
    event_id: Callable[[RecordedEvent], int],
    *,
    feed: str,
    metrics: Metrics,
    heartbeat: float,
    queue_size: int,
    draining: asyncio.Event,
    slots: SseSlots,
) -> StreamingResponse:
    """A streaming response that sends `source`'s events, heartbeats while idle, until drained."""

    async def body() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)

        async def pump() -> None:
            try:
                async for event in source:
                    await queue.put(event)  # waits while the client is behind: backpressure
            except IljiError as exc:
                log.warning("sse: feed ended", extra={"feed": feed, "error": exc.message})
            except Exception:  # end this stream with a log line rather than a silent, stuck one
                log.exception("sse: feed failed", extra={"feed": feed})
            finally:
                await source.aclose()
            await queue.put(_END)

        producer = asyncio.create_task(pump(), name=f"ilji-sse-{feed}")
        drained = asyncio.create_task(draining.wait())
        metrics.sse_connections.labels(feed).inc()
        try:
            # A first comment sends the headers now, so the client knows the stream is open.
            yield b": ok\n\n"
            while not draining.is_set():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait(
                    {getter, drained}, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    if not done:
                        yield b": heartbeat\n\n"
                    continue
                chunk: list[bytes] = []
                item = getter.result()
                while item is not _END:
                    chunk.append(format_message(event_id(item), item))
                    if len(chunk) >= _MAX_BATCH or queue.empty():
                        break
                    item = queue.get_nowait()
                if chunk:
                    metrics.sse_events.inc(len(chunk))
                    yield b"".join(chunk)
                if item is _END:
                    return
        finally:
            metrics.sse_connections.labels(feed).dec()
            drained.cancel()
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
            with contextlib.suppress(asyncio.CancelledError):
                await drained

    return _SlottedStream(
        slots,
        body(),
        media_type=SSE_MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
