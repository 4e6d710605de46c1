"""Appending to the PostgreSQL event store: one stream (grouped or alone), or several at once.

Every append is checked and encoded first (`Part`), so bad input fails its own caller only.
A single-stream append then goes with a group of concurrent appends (`ilji.store.group_commit`)
or alone; a multi-stream call goes alone, in its own transaction. An append that meets stored
event ids or a stream moved on is decided by `ilji.store.append_rules`, like the in-memory
store's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ilji.domain.errors import StoreUnavailable, ValidationError
from ilji.domain.events import POSITION_SHIFT, AppendResult, ExpectedVersion, NewEvent, expected_version_holds
from ilji.domain.validation import (
    in_part,
    validate_events,
    validate_expected_version,
    validate_parts,
    validate_stream_name,
)
from ilji.store import sql
from ilji.store.append_rules import StoredId, resolve_resent_call, resolve_reused_ids, version_conflict
from ilji.store.database import Database
from ilji.store.encoding import encode_event
from ilji.store.follow import Notifier
from ilji.store.group_commit import GroupCommitter, Outcome, Part, Rejected, expected_code, write_parts
from ilji.store.reads import current_version

# How many times an append with expected version ANY or EXISTS retries after another
# append to the same stream took the version it was about to write.
_RACE_RETRIES = 100

_APPEND_ONE = sql.load("append_one")
_APPEND_MANY = sql.load("append_many")
_FIND_BY_ID = sql.load("find_events_by_id")


def _same_call(results: list[AppendResult]) -> bool:
    """Were these parts stored by one `append_streams` call? One transaction (the same block of
    positions), in part order, one unused position between two parts (`write_parts`)."""
    block = results[0].first_position >> POSITION_SHIFT
    return all(r.first_position >> POSITION_SHIFT == block for r in results) and all(
        b.first_position == a.last_position + 2 for a, b in pairwise(results)
    )


class Appender:
    """The write side of a store: `append` and `append_streams` on one database.

    `group_commit` (on by default) sends concurrent appends together; `notifier` (if any) is
    poked after every append that stored something.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_event_size: int,
        notifier: Notifier | None,
        group_commit: bool,
    ) -> None:
        self.database = database
        self.max_event_size = max_event_size
        self._notifier = notifier
        #: Concurrent appends share statements and commits (docs/en/architecture.md).
        self.group_commit = GroupCommitter(database, self.append_alone) if group_commit else None

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        """See `PostgresEventStore.append`."""
        part = self._prepare(stream, events, expected_version)
        outcome: Outcome
        if self.group_commit is None:
            outcome = await self.append_alone(part)
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
        """See `PostgresEventStore.append_streams`."""
        checked = validate_parts(parts)
        prepared = [
            self._prepare_part(k, part.stream, part.events, part.expected_version)
            for k, part in enumerate(checked)
        ]
        for _ in range(_RACE_RETRIES):
            outcomes = await self._write_all_or_nothing(prepared)
            if outcomes is None:
                continue
            if all(isinstance(o, AppendResult) for o in outcomes):
                results = [o for o in outcomes if isinstance(o, AppendResult)]
                if self._notifier:
                    self._notifier.poke()
                return results
            return await self._resolve_parts(prepared, outcomes)
        raise StoreUnavailable("append_streams: too much contention, try again")  # pragma: no cover

    async def _write_all_or_nothing(self, parts: list[Part]) -> list[Outcome] | None:
        """`write_parts` in an explicit transaction, rolled back unless every part was written.

        None when another transaction got in the way: run it again, it sees the other's events.
        """
        async with self.database.connection() as conn:
            try:
                async with conn.transaction():
                    outcomes = await write_parts(conn, parts)
                    if not all(isinstance(o, AppendResult) for o in outcomes):
                        raise psycopg.Rollback  # leaves the block, undoing the parts written
            except (pg_errors.UniqueViolation, pg_errors.DeadlockDetected):
                # Another transaction appended to one of the streams or stored one of the ids
                # while the statement ran (two calls writing the same two streams in opposite
                # order wait on each other's new rows: PostgreSQL ends one as a deadlock).
                return None
        return outcomes

    async def _resolve_parts(self, parts: list[Part], outcomes: list[Outcome]) -> list[AppendResult]:
        """A call that was rolled back: an exact resend, a reused id, or a version conflict."""
        if any(isinstance(o, Rejected) and o.reused for o in outcomes):
            found = await self._find_ids([i for part in parts for i in part.ids])
            return resolve_resent_call([(p.stream, p.ids) for p in parts], found, _same_call)
        for k, (part, outcome) in enumerate(zip(parts, outcomes, strict=True)):
            if isinstance(outcome, Rejected):
                raise version_conflict(part.stream, part.expected, outcome.head, part=k)
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
            body, meta = encode_event(event, i, self.max_event_size)
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
            raise version_conflict(part.stream, part.expected, rejected.head)
        duplicate = await self._resolve_reused_ids(part.stream, part.ids)
        if duplicate is not None:
            return duplicate
        return await self.append_alone(part)  # pragma: no cover - needs a scavenge in between

    async def append_alone(self, part: Part) -> AppendResult:
        """Write one part with its own statement (no grouping, or a group of one)."""
        stream, ids, expected = part.stream, part.ids, part.expected
        query, params = _single_statement(part)
        for _ in range(_RACE_RETRIES):
            reused = False
            # The hot path: `connection()` is a plain borrow-and-return.
            async with self.database.connection() as conn:
                try:
                    cur = await conn.execute(query, params)
                    row = await cur.fetchone()
                except pg_errors.UniqueViolation as exc:
                    if exc.diag.constraint_name == "events_id_key":
                        reused = True
                    elif exc.diag.constraint_name != "events_stream_version_key":
                        raise  # the seam translates it
                    row = None  # another append to this stream won the race for a version
            if row is not None:
                first_version, first_position = row
                return part.result(first_version, first_position)
            if reused:
                # Looked at with the connection given back: one append holds one at a time.
                duplicate = await self._resolve_reused_ids(stream, ids)
                if duplicate is not None:
                    return duplicate
                continue  # pragma: no cover - the stored ids were scavenged meanwhile: try again
            # The expectation did not hold, or we lost a race: look at the stream now.
            async with self.database.connection() as conn:
                actual = await current_version(conn, stream)
            if not expected_version_holds(expected, actual):
                # A conflict, unless the batch is stored already: then this was a retry.
                duplicate = await self._resolve_reused_ids(stream, ids)
                if duplicate is not None:
                    return duplicate
                raise version_conflict(stream, expected, actual)
        raise StoreUnavailable(f"stream {stream!r}: too much contention, try again")  # pragma: no cover

    async def _resolve_reused_ids(self, stream: str, ids: list[uuid.UUID]) -> AppendResult | None:
        """What an append that met stored ids means (`resolve_reused_ids`)."""
        return resolve_reused_ids(stream, ids, await self._find_ids(ids))

    async def _find_ids(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredId]:
        """Where these event ids are stored (those that are)."""
        async with self.database.connection() as conn:
            cur = await conn.execute(_FIND_BY_ID, {"ids": ids})
            rows = await cur.fetchall()
        return {row[0]: StoredId(*row[1:]) for row in rows}


def _single_statement(part: Part) -> tuple[bytes, dict[str, Any]]:
    """The statement that appends `part` alone, and its parameters."""
    code = expected_code(part.expected)
    if len(part.ids) == 1:
        return _APPEND_ONE, {
            "stream": part.stream,
            "expected": code,
            "id": part.ids[0],
            "type": part.types[0],
            "data": part.data[0],
            "metadata": part.metadata[0],
        }
    return _APPEND_MANY, {
        "stream": part.stream,
        "expected": code,
        "ids": part.ids,
        "types": part.types,
        "data": part.data,
        "metadata": part.metadata,
    }
