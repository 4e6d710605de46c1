"""The event store port: what the application and the server need from any store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol, runtime_checkable

from ilji.domain.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent

Direction = Literal["forward", "backward"]


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
        limit: int = 100,
        direction: Direction = "forward",
    ) -> list[RecordedEvent]:
        """Events of one stream from `from_version` (inclusive) in the given direction."""
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
