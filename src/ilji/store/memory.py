"""An in-memory `EventStore` twin for unit tests: same contract, no database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from ilji.domain.errors import IljiError, ValidationError
from ilji.domain.events import (
    ANY,
    AppendPart,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    category_of,
    expected_version_holds,
)
from ilji.domain.validation import (
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
from ilji.store.append_rules import StoredId, resolve_resent_call, resolve_reused_ids, version_conflict
from ilji.store.audit import (
    AUDIT_STREAM,
    LIFECYCLE_STREAM,
    Actor,
    AdminResult,
    audit_event,
    check_appendable_system_stream,
)
from ilji.store.encoding import DEFAULT_MAX_EVENT_SIZE, decode, encode_event
from ilji.store.lifecycle import (
    LifecyclePlan,
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
from ilji.store.port import Direction

T = TypeVar("T")


class MemoryEventStore:
    """Keeps events in a list; positions are 1, 2, 3, ... (commits are never concurrent here)."""

    def __init__(
        self,
        *,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.max_event_size = max_event_size
        self._clock = clock
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._by_id: dict[uuid.UUID, RecordedEvent] = {}
        # event id -> (number of the append that stored it, that append's size)
        self._batch_of: dict[uuid.UUID, tuple[int, int]] = {}
        # first event id of each part of an append_streams call -> (call number, part index)
        self._call_of: dict[uuid.UUID, tuple[int, int]] = {}
        self._calls = 0
        self._changed = asyncio.Condition()
        # Lifecycle rules, as in ilji.stream_rules and ilji.category_retention.
        self._rules: dict[str, StreamLifecycle] = {}
        self._retention: dict[str, Retention] = {}

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append atomically with the same checks and errors as the PostgreSQL store."""
        validate_stream_name(stream)
        expected = validate_expected_version(expected_version)
        validate_events(events)
        return await self._append(stream, events, expected)

    async def append_system_stream(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> int:
        """Append to a `$checkpoint-<name>` stream (see `PostgresEventStore.append_system_stream`)."""
        check_appendable_system_stream(stream)
        expected = validate_expected_version(expected_version)
        validate_events(events)
        return (await self._append(stream, events, expected)).last_version

    async def _append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> AppendResult:
        bodies = self._encode(events)
        ids = [e.id for e in events]
        version = len(self._streams.get(stream, []))
        if any(i in self._by_id for i in ids):
            result = resolve_reused_ids(stream, ids, self._stored(ids))
            assert result is not None
            return result
        if not expected_version_holds(expected, version):
            raise version_conflict(stream, expected, version)
        result = self._write(stream, events, bodies)
        async with self._changed:
            self._changed.notify_all()
        return result

    async def append_streams(
        self, parts: Sequence[tuple[str, Sequence[NewEvent], ExpectedVersion]]
    ) -> list[AppendResult]:
        """Append to several streams at once, all or nothing (see `PostgresEventStore.append_streams`).

        Positions of one call are consecutive here (no unused position between parts).
        """
        checked = validate_parts(parts)
        bodies = []
        for k, part in enumerate(checked):
            try:
                bodies.append(self._encode(part.events))
            except ValidationError as exc:
                raise in_part(exc, k) from None
        if any(e.id in self._by_id for part in checked for e in part.events):
            return self._resolve_resent_call(checked)
        for k, part in enumerate(checked):
            version = len(self._streams.get(part.stream, []))
            if not expected_version_holds(part.expected_version, version):
                raise version_conflict(part.stream, part.expected_version, version, part=k)
        self._calls += 1
        results = []
        for k, (part, encoded) in enumerate(zip(checked, bodies, strict=True)):
            results.append(self._write(part.stream, part.events, encoded))
            self._call_of[part.events[0].id] = (self._calls, k)
        async with self._changed:
            self._changed.notify_all()
        return results

    def _resolve_resent_call(self, parts: list[AppendPart]) -> list[AppendResult]:
        """A call that met stored ids: an exact resend of one earlier call, or refused."""
        calls = [self._call_of.get(part.events[0].id) for part in parts]
        first = calls[0]
        one_call = first is not None and all(c == (first[0], k) for k, c in enumerate(calls))
        ids = [[e.id for e in part.events] for part in parts]
        found = self._stored([i for part_ids in ids for i in part_ids])
        streams = [(part.stream, part_ids) for part, part_ids in zip(parts, ids, strict=True)]
        return resolve_resent_call(streams, found, lambda _stored: one_call)

    def _stored(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, StoredId]:
        """Where these event ids are stored (those that are), as `append_rules` needs it."""
        found = {}
        for i in ids:
            event = self._by_id.get(i)
            if event is not None:
                batch_start, size = self._batch_of[i]
                found[i] = StoredId(
                    event.stream,
                    event.version,
                    event.position,
                    joined_before=event.position != batch_start,
                    joined_after=event.position != batch_start + size - 1,
                )
        return found

    def _encode(self, events: Sequence[NewEvent]) -> list[tuple[Any, Any]]:
        bodies = []
        for i, event in enumerate(events):
            body, meta = encode_event(event, i, self.max_event_size)
            bodies.append((decode(body), decode(meta)))
        return bodies

    def _write(self, stream: str, events: Sequence[NewEvent], bodies: list[tuple[Any, Any]]) -> AppendResult:
        version = len(self._streams.get(stream, []))
        now = self._clock()
        batch_start = len(self._log) + 1
        recorded = []
        for offset, (event, (data, meta)) in enumerate(zip(events, bodies, strict=True)):
            record = RecordedEvent(
                id=event.id,
                stream=stream,
                version=version + offset + 1,
                position=len(self._log) + 1,
                type=event.type,
                data=data,
                metadata=meta,
                recorded_at=now,
            )
            self._log.append(record)
            self._by_id[event.id] = record
            self._batch_of[event.id] = (batch_start, len(events))
            recorded.append(record)
        self._streams.setdefault(stream, []).extend(recorded)
        return AppendResult(
            stream=stream,
            first_version=recorded[0].version,
            last_version=recorded[-1].version,
            first_position=recorded[0].position,
            last_position=recorded[-1].position,
        )

    async def read_stream(
        self,
        stream: str,
        from_version: int | None = None,
        limit: int | None = None,
        direction: Direction = "forward",
    ) -> list[RecordedEvent]:
        """Events of one stream from `from_version` (inclusive): all of them unless `limit` is given."""
        validate_stream_name(stream, allow_system=True)
        if limit is not None:
            validate_limit(limit)
        validate_from_version(from_version)
        events = [e for e in self._streams.get(stream, []) if self._visible(e)]
        if direction == "forward":
            start = 1 if from_version is None else from_version
            return [e for e in events if e.version >= start][:limit]
        if direction == "backward":
            end = len(self._streams.get(stream, [])) if from_version is None else from_version
            return [e for e in reversed(events) if e.version <= end][:limit]
        raise ValidationError("direction", "must be 'forward' or 'backward'")

    async def stream_version(self, stream: str) -> int:
        """The stream's number of events."""
        validate_stream_name(stream, allow_system=True)
        return len(self._streams.get(stream, []))

    async def read_all(
        self, after: int = 0, limit: int = 100, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        """The global log after `after`."""
        validate_after(after)
        validate_limit(limit)
        return self._select(after, limit, types, None)

    async def read_category(
        self,
        category: str,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        """One category of the global log after `after`."""
        validate_category(category)
        validate_after(after)
        validate_limit(limit)
        return self._select(after, limit, types, category)

    def _select(
        self, after: int, limit: int, types: Sequence[str] | None, category: str | None
    ) -> list[RecordedEvent]:
        # One type may be given as a string, as the PostgreSQL store accepts it.
        wanted = ({types} if isinstance(types, str) else set(types)) if types is not None else None
        out = []
        for event in self._log[after:]:
            if category is not None and category_of(event.stream) != category:
                continue
            if category is None and event.stream.startswith("$"):
                continue  # Ilji's own streams are read by category or by stream
            if not self._visible(event):
                continue
            if wanted is not None and event.type not in wanted:
                continue
            out.append(event)
            if len(out) == limit:
                break
        return out

    async def follow(
        self,
        after: int = 0,
        *,
        category: str | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up, then wait for appends."""
        if category is not None:
            validate_category(category)
        validate_after(after)
        cursor = after
        while True:
            page = self._select(cursor, batch_size, types, category)
            for event in page:
                cursor = event.position
                yield event
            if not page:
                async with self._changed:
                    await self._changed.wait_for(partial(_grew, self._log, len(self._log)))

    async def close(self) -> None:
        """Nothing to release."""

    # -- lifecycle and audit: the same rules as the PostgreSQL store ---------------------------

    def _visible(self, event: RecordedEvent) -> bool:
        rule = self._rules.get(event.stream)
        if rule is not None and event.version < rule.first_visible_version:
            return False
        retention = self._retention.get(category_of(event.stream))
        if retention is None:
            return True
        if retention.max_age is not None and event.recorded_at < self._clock() - retention.max_age:
            return False
        head = len(self._streams.get(event.stream, []))
        return retention.max_count is None or event.version > head - retention.max_count

    def _state(self, stream: str) -> StreamLifecycle:
        version = len(self._streams.get(stream, []))
        rule = self._rules.get(stream)
        return replace(rule, version=version) if rule else StreamLifecycle(stream, version)

    async def _audited(
        self,
        actor: Actor | None,
        action: str,
        target: str,
        parameters: dict[str, Any],
        run: Callable[[], AdminResult[T]],
    ) -> T:
        who = actor or Actor.process()
        try:
            done = run()
        except IljiError as exc:
            record = audit_event(who, action, target, parameters, exc.code, exc.message)
            await self._append(AUDIT_STREAM, [record], ANY)
            raise
        for event in done.events:
            await self._append(LIFECYCLE_STREAM, [event], ANY)
        await self._append(AUDIT_STREAM, [audit_event(who, action, target, parameters, done.outcome)], ANY)
        return done.value

    async def stream_lifecycle(self, stream: str) -> StreamLifecycle:
        """A stream's version and lifecycle rules."""
        validate_stream_name(stream, allow_system=True)
        return self._state(stream)

    def _change(
        self, stream: str, plan: Callable[[StreamLifecycle], LifecyclePlan]
    ) -> Callable[[], AdminResult[StreamLifecycle]]:
        def run() -> AdminResult[StreamLifecycle]:
            change = plan(self._state(stream))
            if change.event is None:
                return AdminResult(change.state, outcome="unchanged")
            new = change.state
            if new.deleted_version is not None and new.deleted_at is None:
                new = replace(new, deleted_at=self._clock())
            if new.has_rule:
                self._rules[stream] = new
            else:
                self._rules.pop(stream, None)
            return AdminResult(new, [change.event])

        return run

    async def delete_stream(self, stream: str, *, actor: Actor | None = None) -> StreamLifecycle:
        """Soft-delete a stream (see `PostgresEventStore.delete_stream`)."""
        lifecycle_stream_name(stream)
        return await self._audited(actor, "stream.delete", stream, {}, self._change(stream, plan_delete))

    async def restore_stream(self, stream: str, *, actor: Actor | None = None) -> StreamLifecycle:
        """Undo a soft delete."""
        lifecycle_stream_name(stream)
        return await self._audited(actor, "stream.restore", stream, {}, self._change(stream, plan_restore))

    async def truncate_stream(
        self, stream: str, before: int, *, actor: Actor | None = None
    ) -> StreamLifecycle:
        """Hide the stream's versions below `before`."""
        lifecycle_stream_name(stream)
        run = self._change(stream, lambda s: plan_truncate(s, before))
        return await self._audited(actor, "stream.truncate", stream, {"before": before}, run)

    async def retention(self, category: str) -> Retention | None:
        """A category's retention rule, or None."""
        lifecycle_category_name(category)
        return self._retention.get(category)

    async def set_retention(
        self,
        category: str,
        *,
        max_age_seconds: int | None = None,
        max_count: int | None = None,
        actor: Actor | None = None,
    ) -> Retention:
        """Set a category's retention (see `PostgresEventStore.set_retention`)."""
        lifecycle_category_name(category)
        check_retention(max_age_seconds, max_count)
        age = timedelta(seconds=max_age_seconds) if max_age_seconds is not None else None
        new = Retention(category, age, max_count)

        def run() -> AdminResult[Retention]:
            event = retention_event(self._retention.get(category), new, category)
            self._retention[category] = new
            return AdminResult(new, [event]) if event else AdminResult(new, outcome="unchanged")

        parameters = {"max_age_seconds": max_age_seconds, "max_count": max_count}
        return await self._audited(actor, "retention.set", category, parameters, run)

    async def clear_retention(self, category: str, *, actor: Actor | None = None) -> None:
        """Remove a category's retention rule."""
        lifecycle_category_name(category)

        def run() -> AdminResult[None]:
            event = retention_event(self._retention.pop(category, None), None, category)
            return AdminResult(None, [event]) if event else AdminResult(None, outcome="unchanged")

        await self._audited(actor, "retention.clear", category, {}, run)


def _grew(log: list[RecordedEvent], seen: int) -> bool:
    return len(log) > seen
