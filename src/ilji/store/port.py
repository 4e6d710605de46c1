"""The event store port: what the application and the server need from any store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol, runtime_checkable

from ilji.domain.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent

Direction = Literal["forward", "backward"]

#: Events per query when `read_stream` reads a whole stream (no `limit`): bounded pages, one list.
STREAM_PAGE = 1000


@runtime_checkable
class EventStore(Protocol):
    """An append-only event store with streams, a global log and categories."""

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append a batch atomically, or raise `WrongExpectedVersion` / `DuplicateEventId`."""
        ...

    async def read_stream(
        self,
        stream: str,
        from_version: int | None = None,
        limit: int | None = None,
        direction: Direction = "forward",
    ) -> list[RecordedEvent]:
        """Events of one stream from `from_version` (inclusive) in the given direction.

        Without `limit`, every event to the stream's end (or start, backward); with it, at most
        `limit` (1 to `MAX_READ_LIMIT`), for paging.
        """
        ...

    async def stream_version(self, stream: str) -> int:
        """The stream's number of events (0 when it has none)."""
        ...

    async def read_all(
        self, after: int = 0, limit: int = 100, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        """The global log: committed events with a position greater than `after`, in order."""
        ...

    async def read_category(
        self,
        category: str,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        """The global log restricted to streams of one category."""
        ...

    def follow(
        self,
        after: int = 0,
        *,
        category: str | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from `after`, then wait for new events without busy polling, forever."""
        ...


@runtime_checkable
class SystemStreamStore(EventStore, Protocol):
    """An event store that also appends to Ilji's `$checkpoint-<name>` streams.

    Those streams stay out of the global log (`read_all`, `follow` without a category), so
    nothing that feeds projections, SSE or `ilji tail` from it sees them.
    """

    async def append_system_stream(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> int:
        """Append to a `$checkpoint-<name>` stream if its version is as expected; its new version."""
        ...


@runtime_checkable
class MultiStreamStore(EventStore, Protocol):
    """An event store that appends to several streams in one transaction (all or nothing)."""

    async def append_streams(
        self, parts: Sequence[tuple[str, Sequence[NewEvent], ExpectedVersion]]
    ) -> list[AppendResult]:
        """Append every part `(stream, events, expected_version)` or none; one result per part."""
        ...
