"""Reading the PostgreSQL event store: streams, the global log, categories, and following it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from itertools import starmap
from typing import Any

import orjson

from ilji.domain.errors import ValidationError
from ilji.domain.events import MAX_SAFE_POSITION, RecordedEvent
from ilji.domain.validation import (
    validate_after,
    validate_category,
    validate_from_version,
    validate_limit,
    validate_stream_name,
)
from ilji.store import sql
from ilji.store.database import Connection, Database
from ilji.store.follow import Listener, follow_pages
from ilji.store.port import STREAM_PAGE, Direction

_READ_FORWARD = sql.load("read_stream_forward")
_READ_BACKWARD = sql.load("read_stream_backward")
_READ_ALL = sql.load("read_all")
_READ_CATEGORY = sql.load("read_category")
_STREAM_VERSION = sql.load("stream_version")
_READ_PLANNER = sql.load("read_planner")

WaitReplayed = Callable[[int], Awaitable[None]]
"""Returns once the append at a position is readable (`PostgresEventStore.wait_replayed`)."""


class StoredEvent(RecordedEvent):
    """A recorded event read from PostgreSQL: its JSON is parsed by orjson on first access."""

    __slots__ = ()

    @staticmethod
    def _decode(text: str) -> Any:
        return orjson.loads(text)


async def current_version(conn: Connection, stream: str) -> int:
    """The stream's number of events (0 when it has none), on `conn`."""
    cur = await conn.execute(_STREAM_VERSION, {"stream": stream})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


class LogReader:
    """The read side of a store: stream pages, log pages and following the log.

    `pooled`: `database` goes through a transaction pooler (see `PostgresEventStore.open`).
    `listen_conninfo`: where followers LISTEN (None: they poll). `wait_replayed`: what a read
    with `at_least` waits on.
    """

    def __init__(
        self,
        database: Database,
        *,
        pooled: bool,
        poll_interval: float,
        listen_conninfo: str | None,
        wait_replayed: WaitReplayed,
    ) -> None:
        self.database = database
        self.pooled = pooled
        self.poll_interval = poll_interval
        self.listen_conninfo = listen_conninfo
        self._wait_replayed = wait_replayed
        self._listener: Listener | None = None

    async def close(self) -> None:
        """Stop the LISTEN connection, if one was started."""
        if self._listener:
            await self._listener.close()

    async def read_stream(
        self,
        stream: str,
        from_version: int | None = None,
        limit: int | None = None,
        direction: Direction = "forward",
        *,
        at_least: int | None = None,
    ) -> list[RecordedEvent]:
        """See `PostgresEventStore.read_stream`."""
        validate_stream_name(stream, allow_system=True)
        if limit is not None:
            validate_limit(limit)
        validate_from_version(from_version)
        if direction == "forward":
            query, start, step = _READ_FORWARD, 1 if from_version is None else from_version, 1
        elif direction == "backward":
            query, step = _READ_BACKWARD, -1
            start = MAX_SAFE_POSITION if from_version is None else from_version
        else:
            raise ValidationError("direction", "must be 'forward' or 'backward'")
        if at_least is not None:
            await self._wait_replayed(at_least)
        if limit is not None:
            return await self._fetch_events(query, {"stream": stream, "from_version": start, "limit": limit})
        events: list[RecordedEvent] = []
        while True:
            params = {"stream": stream, "from_version": start, "limit": STREAM_PAGE}
            page = await self._fetch_events(query, params)
            events.extend(page)
            if len(page) < STREAM_PAGE:
                return events
            start = page[-1].version + step

    async def stream_version(self, stream: str) -> int:
        """See `PostgresEventStore.stream_version`."""
        validate_stream_name(stream, allow_system=True)
        async with self.database.connection() as conn:
            return await current_version(conn, stream)

    async def read_all(
        self,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
        *,
        at_least: int | None = None,
    ) -> list[RecordedEvent]:
        """See `PostgresEventStore.read_all`."""
        validate_after(after)
        validate_limit(limit)
        params = {"after": after, "limit": limit, "types": _types(types)}
        if at_least is not None:
            await self._wait_replayed(at_least)
        return await self._fetch_events(_READ_ALL, params, ordered_scan=True)

    async def read_category(
        self,
        category: str,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
        *,
        at_least: int | None = None,
    ) -> list[RecordedEvent]:
        """See `PostgresEventStore.read_category`."""
        validate_category(category)
        validate_after(after)
        validate_limit(limit)
        params = {"category": category, "after": after, "limit": limit, "types": _types(types)}
        if at_least is not None:
            await self._wait_replayed(at_least)
        return await self._fetch_events(_READ_CATEGORY, params, ordered_scan=True)

    async def _fetch_events(
        self, query: bytes, params: dict[str, Any], *, ordered_scan: bool = False
    ) -> list[RecordedEvent]:
        # Pages of the log are a hot path: `connection()` is a plain borrow-and-return.
        async with self.database.connection() as conn:
            # Binary results: integers, UUIDs and timestamps parse faster than as text.
            cur = conn.cursor(binary=True)
            if self.pooled and ordered_scan:
                # One round trip for BEGIN, the planner setting and the page.
                async with conn.pipeline(), conn.transaction():
                    await conn.execute(_READ_PLANNER)
                    await cur.execute(query, params)
                    rows = await cur.fetchall()
            else:
                await cur.execute(query, params)
                rows = await cur.fetchall()
        # Columns come in the constructor's order (see the read_*.sql files); starmap calls
        # the constructor from C, without a Python-level loop and argument unpacking per row.
        return list(starmap(StoredEvent, rows))

    async def follow(
        self,
        after: int = 0,
        *,
        category: str | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]:
        """See `PostgresEventStore.follow`."""
        if category is not None:
            validate_category(category)
        validate_after(after)
        if self._listener is None:
            self._listener = Listener(self.listen_conninfo)

        async def page(cursor: int) -> list[RecordedEvent]:
            if category is None:
                return await self.read_all(cursor, batch_size, types)
            return await self.read_category(category, cursor, batch_size, types)

        async for event in follow_pages(
            page, after, batch_size, self._listener, poll_interval=self.poll_interval
        ):
            yield event


def _types(types: Sequence[str] | None) -> list[str] | None:
    if types is None:
        return None
    if isinstance(types, str):
        return [types]
    return list(types)
