"""What a projection is: a named handler of events that writes read-model tables.

A projection subclasses `Projection`, names itself, says what it reads (`category`, `types`)
and implements `handle` (or `apply` for a whole batch). The runner calls it inside a database
transaction that also advances the checkpoint, so its table writes take effect exactly once.
A handler with external side effects (e-mail, HTTP) cannot be part of that transaction: it is
called at least once per event and gets `ctx.idempotency_key(event)` to deduplicate with.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from ilji.domain.errors import ValidationError
from ilji.domain.events import RecordedEvent

# The connection a handler writes with, inside the runner's transaction: the store's own alias
# (psycopg's AsyncConnection), re-exported as `ilji.projections.Connection`.
from ilji.store.database import Connection as Connection

PoisonPolicy = Literal["park", "stop"]
"""What to do with an event the handler keeps failing on: park it and go on, or stop."""

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def partition_of(stream: str, partitions: int) -> int:
    """The partition (0 .. partitions-1) that owns `stream`.

    CRC-32 of the UTF-8 name: stable across processes, Python versions and machines (unlike
    `hash()`, which is salted per process), so every worker agrees on the owner of a stream,
    and all events of one stream go to one partition, which keeps their order.
    """
    if partitions == 1:
        return 0
    return zlib.crc32(stream.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Context:
    """Who is applying events right now: passed to every handler call."""

    projection: str
    version: int
    partition: int
    partitions: int
    worker_id: str
    fencing_token: int

    def table(self, base: str) -> str:
        """The name of read-model table `base` for this version (`seats` → `seats_v2`).

        A rebuild builds version N+1 into its own tables while version N keeps serving, so
        table names carry the version.
        """
        return f"{base}_v{self.version}"

    def idempotency_key(self, event: RecordedEvent) -> str:
        """A key that is the same every time this projection sees `event` (for side effects)."""
        return f"{self.projection}:{event.id}"


class Projection:
    """Base class of projections: override `handle` (or `apply`) and, usually, `setup`."""

    #: Unique name: lowercase letters, digits and `_`, starting with a letter.
    name: ClassVar[str] = ""
    #: The version this code builds; raising it rebuilds into new tables, then cuts over.
    version: ClassVar[int] = 1
    #: How many independently owned partitions (by stream hash) the projection runs as.
    partitions: ClassVar[int] = 1
    #: Read only this category (None: the whole global log).
    category: ClassVar[str | None] = None
    #: Read only these event types (None: all).
    types: ClassVar[Sequence[str] | None] = None
    #: Events read and applied per transaction.
    batch_size: ClassVar[int] = 500
    #: Poison events: "park" (dead-letter table, go on) or "stop" (partition fails).
    on_poison: ClassVar[PoisonPolicy] = "park"
    #: Attempts on a failing event before the poison policy applies.
    max_attempts: ClassVar[int] = 5
    #: First delay between attempts (seconds); doubles each time up to `max_retry_delay`.
    retry_delay: ClassVar[float] = 0.1
    #: The longest delay between two attempts.
    max_retry_delay: ClassVar[float] = 5.0

    async def setup(self, conn: Connection, ctx: Context) -> None:
        """Create this version's read-model tables; must be idempotent (`IF NOT EXISTS`).

        Called in a transaction when a worker starts owning a partition; concurrent calls for
        the same projection are serialised by the runner.
        """

    async def handle(self, conn: Connection, event: RecordedEvent, ctx: Context) -> None:
        """Apply one event (the partition's own events only, in log order)."""
        raise NotImplementedError(f"{type(self).__name__} must implement handle() or apply()")

    async def apply(self, conn: Connection, events: Sequence[RecordedEvent], ctx: Context) -> None:
        """Apply a batch of events; the default calls `handle` for each. Override to batch SQL."""
        for event in events:
            await self.handle(conn, event, ctx)


def validate_projection(projection: Projection) -> None:
    """Refuse a projection whose class attributes cannot work (raises `ValidationError`)."""
    if not _NAME.match(projection.name):
        raise ValidationError("name", f"{projection.name!r}: use [a-z][a-z0-9_]*, at most 63 characters")
    checks: list[tuple[str, bool]] = [
        ("version", projection.version >= 1),
        ("partitions", 1 <= projection.partitions <= 1024),
        ("batch_size", 1 <= projection.batch_size <= 10_000),
        ("on_poison", projection.on_poison in ("park", "stop")),
        ("max_attempts", projection.max_attempts >= 1),
        ("retry_delay", projection.retry_delay >= 0),
        ("max_retry_delay", projection.max_retry_delay >= projection.retry_delay),
    ]
    for field, ok in checks:
        if not ok:
            raise ValidationError(field, f"invalid value {getattr(projection, field)!r}")
    if projection.types is not None and isinstance(projection.types, str):
        raise ValidationError("types", "must be a sequence of type names, not one string")


def retry_delay(projection: Projection, attempt: int) -> float:
    """The pause after failed attempt number `attempt` (1-based): exponential, capped."""
    return float(min(projection.retry_delay * 2 ** (attempt - 1), projection.max_retry_delay))
