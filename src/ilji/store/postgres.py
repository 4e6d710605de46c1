"""The PostgreSQL event store (psycopg 3, asyncio, a connection pool)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise, starmap
from typing import Any, NoReturn, TypeVar

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from ilji.domain.errors import (
    DuplicateEventId,
    IljiError,
    StoreUnavailable,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.domain.events import (
    ANY,
    MAX_SAFE_POSITION,
    POSITION_SHIFT,
    TRANSACTION_ID_LIMIT,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    expected_version_holds,
)
from ilji.domain.validation import (
    REUSED_BY_ANOTHER_CALL,
    REUSED_IN_PART,
    in_part,
    validate_after,
    validate_category,
    validate_events,
    validate_expected_version,
    validate_from_version,
    validate_limit,
    validate_parts,
    validate_stream_name,
)
from ilji.store import sql
from ilji.store.audit import (
    AUDIT_STREAM,
    LIFECYCLE_STREAM,
    SYSTEM_APPEND_LOCK,
    Actor,
    append_system,
    audit_event,
    check_appendable_system_stream,
)
from ilji.store.database import Database, translate
from ilji.store.encoding import DEFAULT_MAX_EVENT_SIZE, check_size, encode_object
from ilji.store.follow import Listener, Notifier, follow_pages
from ilji.store.group_commit import GroupCommitter, Outcome, Part, Rejected, expected_code, write_parts
from ilji.store.lifecycle import (
    EVENTS_SCAVENGED,
    Change,
    Retention,
    StreamLifecycle,
    check_retention,
    lifecycle_category_name,
    lifecycle_stream_name,
    plan_delete,
    plan_restore,
    plan_truncate,
    retention_event,
)
from ilji.store.port import STREAM_PAGE, Direction

T = TypeVar("T")

Connection = psycopg.AsyncConnection[Any]

AdminBody = Callable[[Connection], Awaitable[tuple[T, list[NewEvent], str]]]
"""The work of an admin action inside its transaction: returns its result, the `$lifecycle`
events that record it, and its outcome ("ok" or "unchanged")."""

log = logging.getLogger("ilji.store")


# How many times an append with expected version ANY or EXISTS retries after another
# append to the same stream took the version it was about to write.
_RACE_RETRIES = 100


class _RollBack(Exception):
    """Leaves a multi-stream append's transaction (rolling it back) with the part outcomes."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes


class _IdempotentRetry(Exception):
    """Carries the stored result of an exact retry out of the append loop."""

    def __init__(self, result: AppendResult) -> None:
        self.result = result


_APPEND_ONE = sql.load("append_one")
_APPEND_MANY = sql.load("append_many")
_FIND_BY_ID = sql.load("find_events_by_id")
_READ_FORWARD = sql.load("read_stream_forward")
_READ_BACKWARD = sql.load("read_stream_backward")
_READ_ALL = sql.load("read_all")
_READ_CATEGORY = sql.load("read_category")
_STREAM_VERSION = sql.load("stream_version")
_OLDEST_TRANSACTION = sql.load("oldest_transaction")
_NEXT_TRANSACTION_ID = sql.load("next_transaction_id")
_INFO = sql.load("info")
_STREAM_LIFECYCLE = sql.load("stream_lifecycle")
_RULES_SAVE = sql.load("stream_rules_save")
_RULES_DROP = sql.load("stream_rules_drop")
_RETENTION_GET = sql.load("retention_get")
_RETENTION_SAVE = sql.load("retention_save")
_RETENTION_DROP = sql.load("retention_drop")
_SCAVENGE_ALLOW = sql.load("scavenge_allow")
_SCAVENGE_BATCH = sql.load("scavenge_batch")
_REPLAYED = sql.load("replayed")
_READ_PLANNER = sql.load("read_planner")
_TRANSACTION_TIMEOUT = sql.load("transaction_timeout")
_NOTE_TIMELINE = sql.load("note_timeline")

#: How long a read with `at_least` waits for a standby to replay that position by default.
DEFAULT_AT_LEAST_TIMEOUT = 5.0


def _same_call(results: list[AppendResult]) -> bool:
    """Were these parts stored by one `append_streams` call? One transaction (the same block of
    positions), in part order, one unused position between two parts (`write_parts`)."""
    block = results[0].first_position >> POSITION_SHIFT
    return all(r.first_position >> POSITION_SHIFT == block for r in results) and all(
        b.first_position == a.last_position + 2 for a, b in pairwise(results)
    )


def _expected_label(expected: ExpectedVersion) -> int | str:
    return expected if isinstance(expected, int) else expected.value


class _StoredEvent(RecordedEvent):
    """A recorded event read from PostgreSQL: its JSON is parsed by orjson on first access."""

    __slots__ = ()

    @staticmethod
    def _decode(text: str) -> Any:
        return orjson.loads(text)


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """A summary of what the store holds, for `ilji info` and the server."""

    streams: int
    events: int
    last_position: int
    visible_bound: int
    server_version: str
    database: str
    #: Two-phase transactions waiting for COMMIT/ROLLBACK PREPARED (they hold the global log).
    prepared_transactions: int


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    # jsonb columns are parsed by orjson: several times faster than the json module.
    set_json_loads(orjson.loads, conn)
    await conn.set_autocommit(True)
    # After a promotion every process reconnects: the first connection records the new
    # timeline, so that readers see what is written on it (migration 0010).
    # Not migrated yet: the store's first query reports it.
    with contextlib.suppress(pg_errors.UndefinedFunction, pg_errors.InvalidSchemaName):
        await conn.execute(_NOTE_TIMELINE)


async def _configure_pooled(conn: psycopg.AsyncConnection[Any]) -> None:
    await _configure(conn)
    # Behind PgBouncer the startup `options` are refused or dropped. TimeZone is one of the
    # parameters PgBouncer tracks per client and sets on whichever server connection it lends
    # that client, so a plain SET holds across transactions; the others are set per
    # transaction (read_planner.sql, transaction_timeout.sql).
    await conn.execute("SET TIME ZONE 'UTC'")


async def _open_pool(
    conninfo: str,
    name: str,
    *,
    min_size: int,
    max_size: int,
    pooled: bool,
    idle_in_transaction_timeout_ms: int,
    connect_timeout: float,
) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    # enable_bitmapscan=off: the planner cannot estimate the global log's visible bound
    # (a stable expression), guesses a handful of rows, and would read every row after
    # the cursor into a bitmap and sort it for each page. An ordered index scan stops
    # after `limit` rows; Ilji's queries never need bitmap scans.
    options = (
        f"-c idle_in_transaction_session_timeout={idle_in_transaction_timeout_ms}"
        " -c enable_bitmapscan=off"
        # Timestamps in UTC: recorded_at is documented as UTC, and psycopg builds
        # datetimes with the fixed UTC tzinfo much faster than with a zoneinfo zone.
        " -c timezone=UTC"
    )
    kwargs: dict[str, Any] = {"application_name": name}
    if pooled:
        # A transaction pooler lends each transaction any server connection: a statement
        # prepared on one is unknown on the next (PgBouncer before 1.21, or without
        # max_prepared_statements), so psycopg must never prepare.
        kwargs["prepare_threshold"] = None
    else:
        kwargs["options"] = options
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs=kwargs,
        configure=_configure_pooled if pooled else _configure,
        open=False,
        timeout=connect_timeout,
        name=name,
    )
    try:
        await pool.open(wait=True, timeout=connect_timeout)
    except Exception as exc:
        await pool.close()
        raise StoreUnavailable(f"cannot connect to PostgreSQL ({name}): {exc}") from exc
    return pool


class PostgresEventStore:
    """An `EventStore` on PostgreSQL. Create it with `PostgresEventStore.open(url)`."""

    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        conninfo: str,
        *,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        notify: bool = True,
        poll_interval: float = 1.0,
        owns_pool: bool = True,
        group_commit: bool = True,
        pooled: bool = False,
        listen_conninfo: str | None = None,
        read_pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None,
        read_conninfo: str | None = None,
        idle_in_transaction_timeout_ms: int = 60_000,
        at_least_timeout: float = DEFAULT_AT_LEAST_TIMEOUT,
    ) -> None:
        self.pool = pool
        #: The seam every query of this store goes through (`ilji.store.database`).
        self.database = Database(pool, conninfo=conninfo)
        self.conninfo = conninfo
        self.max_event_size = max_event_size
        self.poll_interval = poll_interval
        #: True when `pool` goes through a transaction pooler (PgBouncer): no session state.
        self.pooled = pooled
        #: Where LISTEN connects: a direct connection to the primary; None polls only.
        self.listen_conninfo = listen_conninfo or (None if pooled else conninfo)
        self.idle_in_transaction_timeout_ms = idle_in_transaction_timeout_ms
        self.at_least_timeout = at_least_timeout
        self._owns_pool = owns_pool
        self._notifier = Notifier(pool) if notify else None
        self._listener: Listener | None = None
        # Concurrent appends share statements and commits (docs/en/architecture.md).
        self.group_commit = GroupCommitter(pool, self._append_alone) if group_commit else None
        self._read_pool = read_pool
        self._primary: PostgresEventStore | None = None  # set on a `reader` view
        #: The store to read streams and the log from: a view on the hot standby when a read
        #: URL is configured, else this store itself. Appends, expected-version and
        #: idempotency checks, lifecycle and every transaction stay on this (primary) store.
        self.reader: PostgresEventStore = self
        if read_pool is not None:
            self.reader = PostgresEventStore(
                read_pool,
                read_conninfo or conninfo,
                max_event_size=max_event_size,
                notify=False,
                poll_interval=poll_interval,
                owns_pool=False,
                group_commit=False,  # a reader never appends
                # A standby cannot LISTEN (and never sees NOTIFY): wake on the primary's.
                listen_conninfo=self.listen_conninfo,
                at_least_timeout=at_least_timeout,
            )
            if self.listen_conninfo is None:
                self.reader.listen_conninfo = None
            self.reader._primary = self

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
        pool = await _open_pool(conninfo, "ilji", pooled=pooled, **options)
        read_pool = None
        if read_conninfo:
            try:
                read_pool = await _open_pool(read_conninfo, "ilji-read", pooled=False, **options)
            except StoreUnavailable:
                await pool.close()
                raise
        return cls(
            pool,
            conninfo,
            max_event_size=max_event_size,
            notify=notify,
            poll_interval=poll_interval,
            group_commit=group_commit,
            pooled=pooled,
            listen_conninfo=listen_conninfo,
            read_pool=read_pool,
            read_conninfo=read_conninfo,
            idle_in_transaction_timeout_ms=idle_in_transaction_timeout_ms,
            at_least_timeout=at_least_timeout,
        )

    async def close(self) -> None:
        """Finish the appends under way, stop background tasks, close the pool (if ours)."""
        if self.group_commit:
            await self.group_commit.close()
        if self._notifier:
            await self._notifier.close()
        if self._listener:
            await self._listener.close()
        if self.reader is not self:
            await self.reader.close()
            if self._read_pool is not None:
                await self._read_pool.close()
        if self._owns_pool:
            await self.pool.close()

    async def wait_replayed(self, position: int, within: float | None = None) -> None:
        """Return once this store's server has finished the append at `position`.

        On a hot standby this waits (bounded: `within` seconds, default `at_least_timeout`) until the
        standby has replayed it, so a client reads its own writes across the replication lag;
        on the primary it returns at once for any position an append returned. Raises
        `StoreUnavailable` (retryable) when the time is up, and `ValidationError` at once for a
        position no completed append has (the primary has not finished it either).
        """
        validate_after(position, "at_least")
        if await self._finished(position):
            return
        # Not here yet. Worth waiting for only if the primary has it (this may be the primary).
        primary = self._primary
        if primary is None or not await primary._finished(position):
            raise ValidationError("at_least", f"no completed append has position {position}")
        limit = self.at_least_timeout if within is None else within
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        delay = 0.002
        while not await self._finished(position):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StoreUnavailable(
                    f"the database read from has not caught up with position {position} "
                    f"within {limit:g} s (replication lag): retry the read"
                )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)

    async def _finished(self, position: int) -> bool:
        """Has this store's server finished (on a standby: replayed) the append at `position`?"""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(_REPLAYED, {"position": position})
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise translate(exc) from exc
        return bool(row is not None and row[0])

    async def __aenter__(self) -> PostgresEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- appending ---------------------------------------------------------------------------

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
        part = self._prepare(stream, events, expected_version)
        outcome: Outcome
        if self.group_commit is None:
            outcome = await self._append_alone(part)
        else:
            outcome = await self.group_commit.append(part)
        if isinstance(outcome, Rejected):
            return await self._resolve_rejected(part, outcome)
        if self._notifier and not outcome.idempotent:
            self._notifier.poke()
        return outcome

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
        checked = validate_parts(parts)
        prepared = [
            self._prepare_part(k, part.stream, part.events, part.expected_version)
            for k, part in enumerate(checked)
        ]
        try:
            for _ in range(_RACE_RETRIES):
                try:
                    outcomes = await self._write_all_or_nothing(prepared)
                except (pg_errors.UniqueViolation, pg_errors.DeadlockDetected):
                    # Another transaction appended to one of the streams or stored one of the
                    # ids while the statement ran (two calls writing the same two streams in
                    # opposite order wait on each other's new rows: PostgreSQL ends one as a
                    # deadlock): run it again, it sees the other's events now.
                    continue
                if all(isinstance(o, AppendResult) for o in outcomes):
                    results = [o for o in outcomes if isinstance(o, AppendResult)]
                    if self._notifier:
                        self._notifier.poke()
                    return results
                return await self._resolve_parts(prepared, outcomes)
            raise StoreUnavailable("append_streams: too much contention, try again")  # pragma: no cover
        except psycopg.Error as exc:
            raise translate(exc) from exc
        except OSError as exc:
            raise translate(exc) from exc

    async def _write_all_or_nothing(self, parts: list[Part]) -> list[Outcome]:
        """`write_parts` in an explicit transaction, rolled back unless every part was written."""
        async with self.pool.connection() as conn:
            try:
                async with conn.transaction():
                    outcomes = await write_parts(conn, parts)
                    if not all(isinstance(o, AppendResult) for o in outcomes):
                        raise _RollBack(outcomes)
            except _RollBack as rollback:
                return rollback.outcomes
        return outcomes

    async def _resolve_parts(self, parts: list[Part], outcomes: list[Outcome]) -> list[AppendResult]:
        """A call that was rolled back: an exact resend, a reused id, or a version conflict.

        Any part that met stored ids makes the call a resend or a reuse: it is an exact resend
        only if every part's ids are stored as that part, all in one transaction in part order.
        """
        if any(isinstance(o, Rejected) and o.reused for o in outcomes):
            found: list[AppendResult | None] = []
            for k, part in enumerate(parts):
                try:
                    found.append(await self._resolve_reused_ids(part.stream, part.ids))
                except DuplicateEventId as exc:
                    raise DuplicateEventId(exc.stream, exc.event_ids, exc.reason, part=k) from None
            stored = [f for f in found if f is not None]
            if len(stored) != len(parts) or not _same_call(stored):
                k = next(k for k, f in enumerate(found) if f is not None)
                reason = REUSED_BY_ANOTHER_CALL if len(stored) == len(parts) else REUSED_IN_PART
                raise DuplicateEventId(parts[k].stream, [str(i) for i in parts[k].ids], reason, part=k)
            return stored
        for k, (part, outcome) in enumerate(zip(parts, outcomes, strict=True)):
            if isinstance(outcome, Rejected):
                raise WrongExpectedVersion(part.stream, _expected_label(part.expected), outcome.head, part=k)
        raise AssertionError("a rolled-back call has a rejected part")  # pragma: no cover

    def _prepare_part(
        self, k: int, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> Part:
        try:
            return self._prepare(stream, events, expected)
        except ValidationError as exc:
            raise in_part(exc, k) from None

    def _prepare(self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion) -> Part:
        """Check and encode an append (before it joins a group: bad input fails its caller only)."""
        validate_stream_name(stream)
        expected = validate_expected_version(expected_version)
        validate_events(events)
        part = Part(stream, expected, [], [], [], [])
        for i, event in enumerate(events):
            body = encode_object(event.data, f"events[{i}].data")
            meta = encode_object(event.metadata, f"events[{i}].metadata")
            check_size(len(body) + len(meta) + len(event.type), i, self.max_event_size)
            part.ids.append(event.id)
            part.types.append(event.type)
            part.data.append(body)
            part.metadata.append(meta)
        return part

    async def _resolve_rejected(self, part: Part, rejected: Rejected) -> AppendResult:
        """A part its group left out: an exact retry, a reused id, or a version conflict.

        Nothing is written here (so a stream's call order holds), except in the unlikely case
        that the ids seen stored are gone (scavenged) by now: then the part goes alone.
        """
        if not rejected.reused:
            raise WrongExpectedVersion(part.stream, _expected_label(part.expected), rejected.head)
        try:
            duplicate = await self._resolve_reused_ids(part.stream, part.ids)
        except (psycopg.Error, OSError) as exc:
            raise translate(exc) from exc
        if duplicate is not None:
            return duplicate
        return await self._append_alone(part)  # pragma: no cover - needs a scavenge in between

    async def _append_alone(self, part: Part) -> AppendResult:
        """Write one part with its own statement (no grouping, or a group of one)."""
        try:
            return await self._append_once(part)
        except _IdempotentRetry as retry:
            return retry.result

    async def _append_once(self, part: Part) -> AppendResult:
        stream, ids, expected = part.stream, part.ids, part.expected
        code = expected_code(expected)
        if len(ids) == 1:
            query = _APPEND_ONE
            params: dict[str, Any] = {
                "stream": stream,
                "expected": code,
                "id": ids[0],
                "type": part.types[0],
                "data": part.data[0],
                "metadata": part.metadata[0],
            }
        else:
            query = _APPEND_MANY
            params = {
                "stream": stream,
                "expected": code,
                "ids": ids,
                "types": part.types,
                "data": part.data,
                "metadata": part.metadata,
            }
        try:
            for _ in range(_RACE_RETRIES):
                try:
                    # getconn/putconn rather than pool.connection(): this is the hot path.
                    conn = await self.pool.getconn()
                    try:
                        cur = await conn.execute(query, params)
                        row = await cur.fetchone()
                    finally:
                        await self.pool.putconn(conn)
                except pg_errors.UniqueViolation as exc:
                    if exc.diag.constraint_name == "events_id_key":
                        duplicate = await self._resolve_reused_ids(stream, ids)
                        if duplicate is None:  # pragma: no cover - stored ids never vanish
                            raise translate(exc) from exc
                        return duplicate
                    if exc.diag.constraint_name != "events_stream_version_key":
                        raise translate(exc) from exc
                    row = None  # another append to this stream won the race for a version
                if row is not None:
                    first_version, first_position = row
                    break
                # The expectation did not hold, or we lost a race: look at the stream now.
                actual = await self.stream_version(stream)
                if not expected_version_holds(expected, actual):
                    await self._raise_conflict(stream, ids, expected, actual)
            else:  # pragma: no cover - needs 100 lost races in a row
                raise StoreUnavailable(f"stream {stream!r}: too much contention, try again")
        except psycopg.Error as exc:
            raise translate(exc) from exc
        except OSError as exc:
            raise translate(exc) from exc
        return part.result(first_version, first_position)

    async def _raise_conflict(
        self, stream: str, ids: list[uuid.UUID], expected: ExpectedVersion, actual: int
    ) -> NoReturn:
        """Raise the conflict; or, if the batch is stored already, return it as a retry."""
        duplicate = await self._resolve_reused_ids(stream, ids)
        if duplicate is not None:
            raise _IdempotentRetry(duplicate)
        raise WrongExpectedVersion(stream, _expected_label(expected), actual)

    async def _resolve_reused_ids(self, stream: str, ids: list[uuid.UUID]) -> AppendResult | None:
        """Decide what an append that met stored ids means.

        None: none of the ids is stored (a plain version conflict). An `AppendResult`: the
        whole batch is stored in this stream as consecutive events in the same order (an
        idempotent retry). Otherwise `DuplicateEventId`: nothing of this batch is stored.
        """
        async with self.pool.connection() as conn:
            cur = await conn.execute(_FIND_BY_ID, {"ids": ids})
            rows = await cur.fetchall()
        if not rows:
            return None
        found = {row[0]: row for row in rows}
        reused = [str(i) for i in ids if i in found]
        if len(found) != len(ids):
            raise DuplicateEventId(stream, reused, "the batch overlaps stored events only in part")
        ordered = [found[i] for i in ids]
        if any(row[1] != stream for row in ordered):
            raise DuplicateEventId(stream, reused, "they belong to another stream")
        first_version, first_position = ordered[0][2], ordered[0][3]
        # One earlier append: consecutive versions and positions, and no event of this stream
        # right before or after them in the same transaction (a group leaves a gap between
        # its parts, so parts of one stream in one transaction stay apart).
        same_batch = (
            [row[2] for row in ordered] == list(range(first_version, first_version + len(ids)))
            and [row[3] for row in ordered] == list(range(first_position, first_position + len(ids)))
            and not ordered[0][4]
            and not ordered[-1][5]
        )
        if not same_batch:
            raise DuplicateEventId(stream, reused, "they were stored by another batch or in another order")
        return AppendResult(
            stream=stream,
            first_version=first_version,
            last_version=ordered[-1][2],
            first_position=ordered[0][3],
            last_position=ordered[-1][3],
            idempotent=True,
        )

    # -- reading -----------------------------------------------------------------------------

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
            await self.wait_replayed(at_least)
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
        """The stream's number of events (0 when it has none)."""
        validate_stream_name(stream, allow_system=True)
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(_STREAM_VERSION, {"stream": stream})
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise translate(exc) from exc
        return int(row[0]) if row else 0

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
        validate_after(after)
        validate_limit(limit)
        params = {"after": after, "limit": limit, "types": _types(types)}
        if at_least is not None:
            await self.wait_replayed(at_least)
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
        """Like `read_all`, for the streams whose category is `category`."""
        validate_category(category)
        validate_after(after)
        validate_limit(limit)
        params = {"category": category, "after": after, "limit": limit, "types": _types(types)}
        if at_least is not None:
            await self.wait_replayed(at_least)
        return await self._fetch_events(_READ_CATEGORY, params, ordered_scan=True)

    async def _fetch_events(
        self, query: bytes, params: dict[str, Any], *, ordered_scan: bool = False
    ) -> list[RecordedEvent]:
        try:
            # getconn/putconn rather than pool.connection(): pages of the log are a hot path.
            conn = await self.pool.getconn()
            try:
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
            finally:
                await self.pool.putconn(conn)
        except psycopg.Error as exc:
            raise translate(exc) from exc
        except OSError as exc:
            raise translate(exc) from exc
        # Columns come in the constructor's order (see the read_*.sql files); starmap calls
        # the constructor from C, without a Python-level loop and argument unpacking per row.
        return list(starmap(_StoredEvent, rows))

    async def follow(
        self,
        after: int = 0,
        *,
        category: str | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from `after`, then follow live; resumes by itself after connection loss."""
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

    # -- lifecycle and audit (docs/en/lifecycle.md) ------------------------------------------

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

        `body` makes the change; its `$lifecycle` events and the `$audit` event are appended
        in the same transaction, so the change and its record commit together or not at all.
        A failed action (an Ilji error, like an unknown stream) is audited on its own.
        """
        try:
            async with self.pool.connection() as conn, conn.transaction():
                if self.pooled:
                    await conn.execute(
                        _TRANSACTION_TIMEOUT, {"timeout_ms": str(self.idle_in_transaction_timeout_ms)}
                    )
                await conn.execute(SYSTEM_APPEND_LOCK)
                result, events, outcome = await body(conn)
                record = audit_event(actor, action, target, parameters, outcome)
                await append_system(conn, [*((LIFECYCLE_STREAM, e) for e in events), (AUDIT_STREAM, record)])
        except (IljiError, psycopg.Error, OSError) as exc:
            error = translate(exc)
            await self._audit_failure(actor, action, target, parameters, error)
            if error is exc:
                raise
            raise error from exc
        self.poke()
        return result

    async def append_system_stream(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> int:
        """Append to a `$checkpoint-<name>` stream if its version is as expected; its new version.

        Such streams stay out of the global log's user view, like `$audit`. They are written
        as Ilji's own events are, under the system append lock, which also makes reading the
        version and appending one step: no other writer of system streams can come between.
        Raises `WrongExpectedVersion` as `append` does.
        """
        check_appendable_system_stream(stream)
        expected = validate_expected_version(expected_version)
        validate_events(events)
        for i, event in enumerate(events):
            body = encode_object(event.data, f"events[{i}].data")
            meta = encode_object(event.metadata, f"events[{i}].metadata")
            check_size(len(body) + len(meta) + len(event.type), i, self.max_event_size)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(SYSTEM_APPEND_LOCK)
                cur = await conn.execute(_STREAM_VERSION, {"stream": stream})
                row = await cur.fetchone()
                version = int(row[0]) if row else 0
                if not expected_version_holds(expected, version):
                    raise WrongExpectedVersion(stream, _expected_label(expected), version)
                await append_system(conn, [(stream, event) for event in events])
        except (psycopg.Error, OSError) as exc:
            raise translate(exc) from exc
        return version + len(events)

    async def _audit_failure(
        self, actor: Actor, action: str, target: str, parameters: dict[str, Any], error: IljiError
    ) -> None:
        if isinstance(error, StoreUnavailable):
            return  # nothing was changed, and nothing can be written either
        record = audit_event(actor, action, target, parameters, error.code, error.message)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await append_system(conn, [(AUDIT_STREAM, record)])
        except (psycopg.Error, OSError) as exc:
            log.warning(
                "cannot audit a failed admin action",
                extra={"action": action, "error": translate(exc).message},
            )
            return
        self.poke()

    async def stream_lifecycle(self, stream: str) -> StreamLifecycle:
        """A stream's version and lifecycle rules (soft delete, truncation)."""
        validate_stream_name(stream, allow_system=True)
        try:
            async with self.pool.connection() as conn:
                return await _lifecycle(conn, stream)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    async def delete_stream(self, stream: str, *, actor: Actor | None = None) -> StreamLifecycle:
        """Soft-delete a stream: reads find nothing, its events stay stored and restorable.

        Raises `StreamNotFound` for a stream without events. An append afterwards brings the
        stream back with the new events only.
        """
        return await self._change_stream("stream.delete", stream, {}, plan_delete, actor)

    async def restore_stream(self, stream: str, *, actor: Actor | None = None) -> StreamLifecycle:
        """Undo a soft delete (nothing changes for a stream that is not deleted)."""
        return await self._change_stream("stream.restore", stream, {}, plan_restore, actor)

    async def truncate_stream(
        self, stream: str, before: int, *, actor: Actor | None = None
    ) -> StreamLifecycle:
        """Hide the stream's versions below `before` (1 shows them all again)."""
        return await self._change_stream(
            "stream.truncate", stream, {"before": before}, lambda s: plan_truncate(s, before), actor
        )

    async def _change_stream(
        self,
        action: str,
        stream: str,
        parameters: dict[str, Any],
        plan: Callable[[StreamLifecycle], Change],
        actor: Actor | None,
    ) -> StreamLifecycle:
        lifecycle_stream_name(stream)

        async def body(conn: Connection) -> tuple[StreamLifecycle, list[NewEvent], str]:
            change = plan(await _lifecycle(conn, stream))
            if change.event is None:
                return change.state, [], change.outcome
            new = change.state
            if new.has_rule:
                params = {
                    "stream": stream,
                    "truncate_before": new.truncate_before,
                    "deleted_version": new.deleted_version,
                }
                await conn.execute(_RULES_SAVE, params)
            else:
                await conn.execute(_RULES_DROP, {"stream": stream})
            return await _lifecycle(conn, stream), [change.event], change.outcome

        return await self.audited(actor or Actor.process(), action, stream, parameters, body)

    async def retention(self, category: str) -> Retention | None:
        """A category's retention rule, or None."""
        lifecycle_category_name(category)
        try:
            async with self.pool.connection() as conn:
                return await _retention(conn, category)
        except psycopg.Error as exc:
            raise translate(exc) from exc

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
        lifecycle_category_name(category)
        check_retention(max_age_seconds, max_count)
        new = Retention(
            category,
            timedelta(seconds=max_age_seconds) if max_age_seconds is not None else None,
            max_count,
        )

        async def body(conn: Connection) -> tuple[Retention, list[NewEvent], str]:
            event = retention_event(await _retention(conn, category), new, category)
            if event is None:
                return new, [], "unchanged"
            params = {"category": category, "max_age_seconds": max_age_seconds, "max_count": max_count}
            await conn.execute(_RETENTION_SAVE, params)
            return new, [event], "ok"

        parameters = {"max_age_seconds": max_age_seconds, "max_count": max_count}
        return await self.audited(actor or Actor.process(), "retention.set", category, parameters, body)

    async def clear_retention(self, category: str, *, actor: Actor | None = None) -> None:
        """Remove a category's retention rule: its events are visible again."""
        lifecycle_category_name(category)

        async def body(conn: Connection) -> tuple[None, list[NewEvent], str]:
            event = retention_event(await _retention(conn, category), None, category)
            if event is None:
                return None, [], "unchanged"
            await conn.execute(_RETENTION_DROP, {"category": category})
            return None, [event], "ok"

        await self.audited(actor or Actor.process(), "retention.clear", category, {}, body)

    async def scavenge_batch(self, limit: int = 1000, *, actor: Actor | None = None) -> int:
        """Remove up to `limit` rows the lifecycle rules hide; returns how many (0: done).

        This is the only removal `ilji.events` allows (migration 0007): hidden rows only, never
        a stream's newest row, so versions are never reused. It cannot be undone: restoring or
        un-truncating afterwards shows only what is left. Each batch is its own short
        transaction with its `$lifecycle` and `$audit` events (a long one would hold back the
        global log's visible bound for every reader). It needs the DELETE privilege on
        `ilji.events`, which only the schema owner has when app roles are in use.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise ValidationError("limit", "must be an integer from 1 to 100000")

        async def body(conn: Connection) -> tuple[int, list[NewEvent], str]:
            await conn.execute(_SCAVENGE_ALLOW)
            cur = await conn.execute(_SCAVENGE_BATCH, {"limit": limit})
            streams: dict[str, int] = {}
            for (stream,) in await cur.fetchall():
                streams[stream] = streams.get(stream, 0) + 1
            removed = sum(streams.values())
            if not removed:
                return 0, [], "unchanged"
            return removed, [NewEvent(EVENTS_SCAVENGED, {"events": removed, "streams": streams})], "ok"

        removed: int = await self.audited(
            actor or Actor.process(), "streams.scavenge", "ilji.events", {"limit": limit}, body
        )
        return removed

    # -- diagnostics -------------------------------------------------------------------------

    @property
    def notifications_sent(self) -> int:
        """NOTIFYs this store sent after appends (appends per notification shows coalescing)."""
        return self._notifier.sent if self._notifier else 0

    async def oldest_transaction_age(self) -> float:
        """Seconds the oldest open writing transaction in the cluster has been open.

        Prepared (two-phase) transactions count, from when they were prepared: one that is
        never committed or rolled back holds the global log's visible bound for ever."""
        row = await self._one_row(_OLDEST_TRANSACTION)
        return float(row[0])

    async def transaction_ids_left(self) -> int:
        """How many more transaction ids PostgreSQL can assign before appends fail for good.

        A position is a transaction id << 12 and stays below 2**53, so ids end at 2**41
        (`TRANSACTION_ID_LIMIT`); `ilji info` and the server warn below a tenth of that.
        """
        row = await self._one_row(_NEXT_TRANSACTION_ID)
        return TRANSACTION_ID_LIMIT - int(row[0])

    async def info(self) -> StoreInfo:
        """Counts and positions for `ilji info`."""
        return StoreInfo(*await self._one_row(_INFO))

    async def _one_row(self, query: bytes) -> tuple[Any, ...]:
        """The row of a diagnostic query that always returns one."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(query)
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise translate(exc) from exc
        assert row is not None
        return tuple(row)

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers."""
        try:
            async with self.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:
            raise translate(exc) from exc


async def _lifecycle(conn: Connection, stream: str) -> StreamLifecycle:
    cur = await conn.execute(_STREAM_LIFECYCLE, {"stream": stream})
    row = await cur.fetchone()
    assert row is not None
    return StreamLifecycle(stream, *row)


async def _retention(conn: Connection, category: str) -> Retention | None:
    cur = await conn.execute(_RETENTION_GET, {"category": category})
    row = await cur.fetchone()
    if row is None:
        return None
    _name, seconds, max_count = row
    return Retention(category, timedelta(seconds=seconds) if seconds is not None else None, max_count)


def _types(types: Sequence[str] | None) -> list[str] | None:
    if types is None:
        return None
    if isinstance(types, str):
        return [types]
    return list(types)
