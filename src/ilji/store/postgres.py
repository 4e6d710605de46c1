"""The PostgreSQL event store (psycopg 3, asyncio, a connection pool).

`PostgresEventStore` is the object users open; it holds the `Database` (the seam every query
goes through) and hands each job to a small part that shares it:

- `Appender` (`ilji.store.appends`): `append`, `append_streams`, with group commit;
- `LogReader` (`ilji.store.reads`): stream and log pages, `follow`;
- `AdminTransactions` (`ilji.store.admin`): admin actions with their audit records;
- `LifecycleAdmin` (`ilji.store.lifecycle_admin`): soft delete, truncation, retention, scavenging;
- `Diagnostics` (`ilji.store.diagnostics`): health, counts, transaction ids, standby progress.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from ilji.domain.errors import StoreUnavailable
from ilji.domain.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from ilji.store.admin import AdminBody, AdminTransactions
from ilji.store.appends import Appender
from ilji.store.audit import Actor
from ilji.store.database import Connection as Connection  # re-exported for the projections
from ilji.store.database import Database
from ilji.store.diagnostics import DEFAULT_AT_LEAST_TIMEOUT, Diagnostics, StoreInfo
from ilji.store.encoding import DEFAULT_MAX_EVENT_SIZE
from ilji.store.follow import Notifier
from ilji.store.group_commit import GroupCommitter
from ilji.store.lifecycle import Retention, StreamLifecycle
from ilji.store.lifecycle_admin import LifecycleAdmin
from ilji.store.port import Direction
from ilji.store.reads import LogReader

T = TypeVar("T")


class PostgresEventStore:
    """An `EventStore` on PostgreSQL. Create it with `PostgresEventStore.open(url)`.

    `reader` is the store to read streams and the log from: a view on the hot standby when a
    read URL is configured, else this store itself. Appends, expected-version and idempotency
    checks, lifecycle and every transaction stay on this (primary) store.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        notify: bool = True,
        poll_interval: float = 1.0,
        owns_database: bool = True,
        group_commit: bool = True,
        pooled: bool = False,
        listen_conninfo: str | None = None,
        read_database: Database | None = None,
        idle_in_transaction_timeout_ms: int = 60_000,
        at_least_timeout: float = DEFAULT_AT_LEAST_TIMEOUT,
        primary: PostgresEventStore | None = None,
    ) -> None:
        #: The seam every query of this store goes through (`ilji.store.database`).
        self.database = database
        self.conninfo = database.conninfo
        self.max_event_size = max_event_size
        #: True when `database` goes through a transaction pooler (PgBouncer): no session state.
        self.pooled = pooled
        self.idle_in_transaction_timeout_ms = idle_in_transaction_timeout_ms
        self._owns_database = owns_database
        self._notifier = Notifier(database) if notify else None
        self._diagnostics: Diagnostics = Diagnostics(
            database,
            at_least_timeout=at_least_timeout,
            primary=primary._diagnostics if primary is not None else None,
        )
        # A reader view on a standby listens where its primary does (a standby cannot LISTEN),
        # or nowhere; a primary LISTENs on its own URL unless a pooler is in the way.
        if not listen_conninfo:
            listen_conninfo = database.conninfo if primary is None and not pooled else None
        self._reads = LogReader(
            database,
            pooled=pooled,
            poll_interval=poll_interval,
            listen_conninfo=listen_conninfo,
            wait_replayed=self.wait_replayed,
        )
        self._appends = Appender(
            database, max_event_size=max_event_size, notifier=self._notifier, group_commit=group_commit
        )
        self._admin = AdminTransactions(
            database,
            poke=self.poke,
            max_event_size=max_event_size,
            pooled=pooled,
            idle_in_transaction_timeout_ms=idle_in_transaction_timeout_ms,
        )
        self._lifecycle = LifecycleAdmin(database, self._admin)
        self.reader: PostgresEventStore = self
        if read_database is not None:
            self.reader = PostgresEventStore(
                read_database,
                max_event_size=max_event_size,
                notify=False,
                poll_interval=poll_interval,
                owns_database=True,  # closed with this store
                group_commit=False,  # a reader never appends
                listen_conninfo=self.listen_conninfo,
                at_least_timeout=at_least_timeout,
                primary=self,
            )

    @classmethod
    async def open(
        cls,
        conninfo: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        notify: bool = True,
        poll_interval: float = 1.0,
        idle_in_transaction_timeout_ms: int = 60_000,
        connect_timeout: float = 10.0,
        group_commit: bool = True,
        pooled: bool = False,
        listen_conninfo: str | None = None,
        read_conninfo: str | None = None,
        at_least_timeout: float = DEFAULT_AT_LEAST_TIMEOUT,
    ) -> PostgresEventStore:
        """Open a pool to `conninfo` (a PostgreSQL URL) and wait until it has a connection.

        `pooled`: `conninfo` goes through a transaction pooler such as PgBouncer (no prepared
        statements, no session settings); LISTEN then needs `listen_conninfo`, a direct URL
        of the primary, or followers poll. `read_conninfo`: a hot standby for `reader`.
        `group_commit` (on by default) writes concurrent appends of this process together,
        one statement and one commit per group.
        """
        options: dict[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "idle_in_transaction_timeout_ms": idle_in_transaction_timeout_ms,
            "connect_timeout": connect_timeout,
        }
        database = await Database.open(conninfo, "ilji", pooled=pooled, **options)
        read_database = None
        if read_conninfo:
            try:
                read_database = await Database.open(read_conninfo, "ilji-read", pooled=False, **options)
            except StoreUnavailable:
                await database.close()
                raise
        return cls(
            database,
            max_event_size=max_event_size,
            notify=notify,
            poll_interval=poll_interval,
            group_commit=group_commit,
            pooled=pooled,
            listen_conninfo=listen_conninfo,
            read_database=read_database,
            idle_in_transaction_timeout_ms=idle_in_transaction_timeout_ms,
            at_least_timeout=at_least_timeout,
        )

    async def close(self) -> None:
        """Finish the appends under way, stop background tasks, close the pool (if ours)."""
        if self.group_commit:
            await self.group_commit.close()
        if self._notifier:
            await self._notifier.close()
        await self._reads.close()
        if self.reader is not self:
            await self.reader.close()
        if self._owns_database:
            await self.database.close()

    async def __aenter__(self) -> PostgresEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def group_commit(self) -> GroupCommitter | None:
        """The group committer of appends (None when group commit is off), for metrics."""
        return self._appends.group_commit

    @property
    def listen_conninfo(self) -> str | None:
        """Where LISTEN connects: a direct connection to the primary; None polls only."""
        return self._reads.listen_conninfo

    @property
    def poll_interval(self) -> float:
        """Seconds a caught-up follower waits before reading the log again without a NOTIFY."""
        return self._reads.poll_interval

    @property
    def at_least_timeout(self) -> float:
        """Seconds a read with `at_least` waits by default for this server to replay it."""
        return self._diagnostics.at_least_timeout

    @at_least_timeout.setter
    def at_least_timeout(self, seconds: float) -> None:
        self._diagnostics.at_least_timeout = seconds

    # -- the log: appending, reading, following ---------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append `events` to `stream` atomically if the stream's version is as expected.

        Raises `WrongExpectedVersion` (with `expected` and `actual`), `DuplicateEventId` when
        an id is stored already and this is not an exact retry, `ValidationError` on bad
        input and `StoreUnavailable` when the database cannot be reached. With group commit,
        concurrent calls share a statement; each still gets its own result or error.
        """
        return await self._appends.append(stream, events, expected_version)

    async def append_streams(
        self, parts: Sequence[tuple[str, Sequence[NewEvent], ExpectedVersion]]
    ) -> list[AppendResult]:
        """Append to several streams in one transaction: every part is stored, or none is.

        `parts` are `(stream, events, expected_version)` tuples (`AppendPart`), one per stream;
        the answer has one `AppendResult` per part, in part order. The call's events are
        consecutive in the global log in part order: one transaction, positions counting up
        across the parts, with one unused position between two parts (no other event can sit
        there). Raises `ValidationError` naming the part (`parts[1].events[0].type`),
        `WrongExpectedVersion` / `DuplicateEventId` with `part` set to the first failing part,
        and nothing is stored then. Resending the same call (same event ids, same parts)
        answers with the original results (`idempotent=True`); reusing only some of its ids,
        or in other parts, is refused with `DuplicateEventId`.

        Group commit is bypassed: the parts need a transaction of their own, which a group of
        other callers' appends must not share (one failing part rolls everything back).
        """
        return await self._appends.append_streams(parts)

    async def read_stream(
        self,
        stream: str,
        from_version: int | None = None,
        limit: int | None = None,
        direction: Direction = "forward",
        *,
        at_least: int | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream from `from_version` (inclusive): all of them unless `limit` is given.

        Forward starts at version 1 by default; backward starts at the newest event. Without
        `limit` the stream is read `STREAM_PAGE` events per query until its end.
        `at_least`: first wait until the append at that position is readable here (a standby
        behind the primary; see `wait_replayed`).
        """
        return await self._reads.read_stream(stream, from_version, limit, direction, at_least=at_least)

    async def stream_version(self, stream: str) -> int:
        """The stream's number of events (0 when it has none)."""
        return await self._reads.stream_version(stream)

    async def read_all(
        self,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
        *,
        at_least: int | None = None,
    ) -> list[RecordedEvent]:
        """Committed events with a position greater than `after`, in global order.

        `at_least`: first wait until the append at that position is readable (`wait_replayed`).
        """
        return await self._reads.read_all(after, limit, types, at_least=at_least)

    async def read_category(
        self,
        category: str,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
        *,
        at_least: int | None = None,
    ) -> list[RecordedEvent]:
        """Like `read_all`, for the streams whose category is `category`."""
        return await self._reads.read_category(category, after, limit, types, at_least=at_least)

    def follow(
        self,
        after: int = 0,
        *,
        category: str | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from `after`, then follow live; resumes by itself after connection loss."""
        return self._reads.follow(after, category=category, types=types, batch_size=batch_size)

    # -- admin actions and audit (docs/en/lifecycle.md) -------------------------------------

    def poke(self) -> None:
        """Wake followers of this store (after Ilji appended its own events)."""
        if self._notifier:
            self._notifier.poke()

    async def audited(
        self,
        actor: Actor,
        action: str,
        target: str,
        parameters: dict[str, Any],
        body: AdminBody[T],
    ) -> T:
        """Run an admin action in one transaction with the events that record it.

        `body` makes the change and says what it did (an `AdminResult`: the value to return,
        its `$lifecycle` events, "ok" or "unchanged"); those events and the `$audit` event are
        appended in the same transaction, so the change and its record commit together or not
        at all. A failed action (an Ilji error, like an unknown stream) is audited on its own.
        """
        return await self._admin.audited(actor, action, target, parameters, body)

    async def append_system_stream(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> int:
        """Append to a `$checkpoint-<name>` stream if its version is as expected; its new version.

        Such streams stay out of the global log's user view, like `$audit`. They are written
        as Ilji's own events are, under the system append lock, which also makes reading the
        version and appending one step: no other writer of system streams can come between.
        Raises `WrongExpectedVersion` as `append` does.
        """
        return await self._admin.append_system_stream(stream, events, expected_version)

    async def stream_lifecycle(self, stream: str) -> StreamLifecycle:
        """A stream's version and lifecycle rules (soft delete, truncation)."""
        return await self._lifecycle.stream_lifecycle(stream)

    async def delete_stream(self, stream: str, *, actor: Actor | None = None) -> StreamLifecycle:
        """Soft-delete a stream: reads find nothing, its events stay stored and restorable.

        Raises `StreamNotFound` for a stream without events. An append afterwards brings the
        stream back with the new events only.
        """
        return await self._lifecycle.delete_stream(stream, actor)

    async def restore_stream(self, stream: str, *, actor: Actor | None = None) -> StreamLifecycle:
        """Undo a soft delete (nothing changes for a stream that is not deleted)."""
        return await self._lifecycle.restore_stream(stream, actor)

    async def truncate_stream(
        self, stream: str, before: int, *, actor: Actor | None = None
    ) -> StreamLifecycle:
        """Hide the stream's versions below `before` (1 shows them all again)."""
        return await self._lifecycle.truncate_stream(stream, before, actor)

    async def retention(self, category: str) -> Retention | None:
        """A category's retention rule, or None."""
        return await self._lifecycle.retention(category)

    async def set_retention(
        self,
        category: str,
        *,
        max_age_seconds: int | None = None,
        max_count: int | None = None,
        actor: Actor | None = None,
    ) -> Retention:
        """Hide the category's events older than `max_age_seconds`, or beyond the newest
        `max_count` of their stream (either or both)."""
        return await self._lifecycle.set_retention(category, max_age_seconds, max_count, actor)

    async def clear_retention(self, category: str, *, actor: Actor | None = None) -> None:
        """Remove a category's retention rule: its events are visible again."""
        await self._lifecycle.clear_retention(category, actor)

    async def scavenge_batch(self, limit: int = 1000, *, actor: Actor | None = None) -> int:
        """Remove up to `limit` rows the lifecycle rules hide; returns how many (0: done).

        This is the only removal `ilji.events` allows (migration 0007): hidden rows only, never
        a stream's newest row, so versions are never reused. It cannot be undone: restoring or
        un-truncating afterwards shows only what is left. Each batch is its own short
        transaction with its `$lifecycle` and `$audit` events (a long one would hold back the
        global log's visible bound for every reader). It needs the DELETE privilege on
        `ilji.events`, which only the schema owner has when app roles are in use.
        """
        return await self._lifecycle.scavenge_batch(limit, actor)

    # -- diagnostics ------------------------------------------------------------------------

    @property
    def notifications_sent(self) -> int:
        """NOTIFYs this store sent after appends (appends per notification shows coalescing)."""
        return self._notifier.sent if self._notifier else 0

    async def wait_replayed(self, position: int, within: float | None = None) -> None:
        """Return once this store's server has finished the append at `position`.

        On a hot standby this waits (bounded: `within` seconds, default `at_least_timeout`) until the
        standby has replayed it, so a client reads its own writes across the replication lag;
        on the primary it returns at once for any position an append returned. Raises
        `StoreUnavailable` (retryable) when the time is up, and `ValidationError` at once for a
        position no completed append has (the primary has not finished it either).
        """
        await self._diagnostics.wait_replayed(position, within)

    async def oldest_transaction_age(self) -> float:
        """Seconds the oldest open writing transaction in the cluster has been open.

        Prepared (two-phase) transactions count, from when they were prepared: one that is
        never committed or rolled back holds the global log's visible bound for ever."""
        return await self._diagnostics.oldest_transaction_age()

    async def transaction_ids_left(self) -> int:
        """How many more transaction ids PostgreSQL can assign before appends fail for good.

        A position is a transaction id << 12 and stays below 2**53, so ids end at 2**41
        (`TRANSACTION_ID_LIMIT`); `ilji info` and the server warn below a tenth of that.
        """
        return await self._diagnostics.transaction_ids_left()

    async def info(self) -> StoreInfo:
        """Counts and positions for `ilji info`."""
        return await self._diagnostics.info()

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers."""
        await self._diagnostics.ping()
