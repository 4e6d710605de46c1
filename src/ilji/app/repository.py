"""Command handling and loading: the one place where deciders meet the event store.

`Repository.handle` is the whole loop of event sourcing:

1. load the stream: the newest usable snapshot, then the events after it, folded with `evolve`;
2. `decide` the command against that state;
3. append the new events, expecting the version that was loaded;
4. if another writer appended first (`WrongExpectedVersion`), go back to 1 — a bounded number
   of times, with a short random pause so that retrying writers spread out.

The same loading machinery answers temporal queries: the state as of a version, as of a time,
and the full history with the state after each event.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from ilji.app.context import Clock, CommandContext, system_clock
from ilji.app.errors import EventSchemaError
from ilji.app.model import AggregateType
from ilji.app.registry import UnknownEvent
from ilji.domain.errors import WrongExpectedVersion
from ilji.domain.events import AppendResult, RecordedEvent
from ilji.store.port import EventStore, MultiStreamStore
from ilji.store.snapshots import Snapshot, SnapshotStore

log = logging.getLogger(__name__)

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")

#: Events read per round trip while folding a stream.
PAGE_SIZE = 5000


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """A stream's state at `version`; `snapshot_version` is 0 when no snapshot was used."""

    stream: str
    state: S
    version: int
    snapshot_version: int = 0
    events_folded: int = 0


@dataclass(frozen=True, slots=True)
class CommandResult(Generic[E, S]):
    """What handling a command did: its events (none for an idempotent repeat) and the new state."""

    stream: str
    events: list[E]
    state: S
    version: int
    append: AppendResult | None
    attempts: int


@dataclass(frozen=True, slots=True)
class HistoryEntry(Generic[E, S]):
    """One event of a stream's history and the state right after it."""

    recorded: RecordedEvent
    event: E | UnknownEvent
    state: S


@dataclass(slots=True)
class _Fold(Generic[S]):
    """A fold in progress: the state after `version`, folded from `first_version` on.

    `first_version` is 0 while nothing is folded. `gapless` turns false when a page skipped
    versions after the fold began: a lifecycle rule changed while it read, so the state is
    fit to answer this load but not to be kept as a snapshot.
    """

    state: S
    version: int
    last_event_id: Any = None
    count: int = 0
    first_version: int = 0
    gapless: bool = True


class Repository(Generic[C, E, S]):
    """Loads, decides and appends for one aggregate type on one event store."""

    def __init__(
        self,
        store: EventStore,
        aggregate_type: AggregateType[C, E, S],
        *,
        snapshots: SnapshotStore | None = None,
        clock: Clock = system_clock,
        max_retries: int = 10,
        retry_delay: float = 0.002,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.store = store
        self.type = aggregate_type
        self.snapshots = snapshots if aggregate_type.snapshots is not None else None
        self.clock = clock
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.page_size = page_size

    def stream(self, entity_id: str) -> str:
        """The stream name of an entity."""
        return self.type.stream(entity_id)

    # -- commands ------------------------------------------------------------------------------

    async def handle(
        self,
        entity_id: str,
        command: C,
        context: CommandContext | None = None,
        *,
        expected_version: int | None = None,
    ) -> CommandResult[E, S]:
        """Decide `command` on the entity's current state and append its events.

        Raises what `decide` raises (`CommandRejected`, never retried), or the last
        `WrongExpectedVersion` when `max_retries` reloads all lost the race.

        `expected_version` is the version the caller last saw (an HTTP `If-Match`): the command
        is then decided only on that version, and a stream that moved on raises
        `WrongExpectedVersion` at once, without retrying, because the caller decided on what it
        saw and must look again.
        """
        context = context or CommandContext()
        stream = self.stream(entity_id)
        decider = self.type.decider
        attempt = 0
        while True:
            attempt += 1
            loaded, fold = await self._load_fold(stream, None, use_snapshots=True)
            if expected_version is not None and loaded.version != expected_version:
                raise WrongExpectedVersion(stream, expected_version, loaded.version)
            events = list(decider.decide(command, loaded.state))
            if not events:
                return CommandResult(stream, [], loaded.state, loaded.version, None, attempt)
            metadata = context.metadata(self.clock())
            new_events = [self.type.events.encode(event, metadata) for event in events]
            try:
                result = await self.store.append(stream, new_events, loaded.version)
            except WrongExpectedVersion:
                if attempt > self.max_retries or expected_version is not None:
                    raise
                log.debug("version conflict, reloading", extra={"stream": stream, "attempt": attempt})
                # Full jitter: writers that lost the same race wake at different times, so the
                # next round is not the same pile-up again.
                cap = min(0.1, self.retry_delay * 2 ** min(attempt, 10))
                await asyncio.sleep(random.uniform(0, cap))
                continue
            state = decider.fold(events, loaded.state)
            folded = _Fold(
                state,
                result.last_version,
                new_events[-1].id,
                first_version=fold.first_version or result.first_version,
                gapless=fold.gapless,
            )
            await self._maybe_snapshot(stream, loaded.version, folded)
            return CommandResult(stream, events, state, result.last_version, result, attempt)

    # -- loading -------------------------------------------------------------------------------

    async def load(self, entity_id: str, *, use_snapshots: bool = True) -> Loaded[S]:
        """The entity's current state and version (the initial state at version 0 if it has no events)."""
        return await self._load(self.stream(entity_id), None, use_snapshots=use_snapshots)

    async def state_at(
        self, entity_id: str, *, version: int | None = None, at: datetime | None = None
    ) -> Loaded[S]:
        """The state as of stream `version`, or as of time `at` (events recorded at or before it)."""
        if (version is None) == (at is None):
            raise ValueError("give exactly one of version= and at=")
        stream = self.stream(entity_id)
        if at is not None:
            version = await self._version_at(stream, at)
        assert version is not None
        if version < 0:
            raise ValueError("version must be >= 0")
        if version == 0:
            return Loaded(stream, self.type.decider.initial_state(), 0)
        return await self._load(stream, version, use_snapshots=True)

    async def version_at(self, entity_id: str, at: datetime) -> int:
        """The stream's version as of time `at`: its number of events recorded at or before `at`."""
        return await self._version_at(self.stream(entity_id), at)

    async def history(self, entity_id: str) -> list[HistoryEntry[E, S]]:
        """Every event of the stream with the state right after it (the stream's full story)."""
        stream = self.stream(entity_id)
        decider = self.type.decider
        state = decider.initial_state()
        entries: list[HistoryEntry[E, S]] = []
        version = 1
        while page := await self.store.read_stream(stream, version, self.page_size):
            for recorded in page:
                event = self.type.events.decode(recorded)
                if not isinstance(event, UnknownEvent):
                    state = decider.evolve(state, event)  # type: ignore[arg-type]
                entries.append(HistoryEntry(recorded, event, state))  # type: ignore[arg-type]
            version = page[-1].version + 1
        return entries

    async def take_snapshot(self, entity_id: str) -> Snapshot | None:
        """Fold the stream from its events and store a snapshot now (None without a policy or events)."""
        policy = self.type.snapshots
        if policy is None or self.snapshots is None:
            return None
        stream = self.stream(entity_id)
        fold = await self._fold(stream, _Fold(self.type.decider.initial_state(), 0), None)
        if fold.version == 0:
            return None
        return await self._save_snapshot(stream, fold)

    # -- machinery -----------------------------------------------------------------------------

    async def _load(self, stream: str, max_version: int | None, *, use_snapshots: bool) -> Loaded[S]:
        loaded, _ = await self._load_fold(stream, max_version, use_snapshots=use_snapshots)
        return loaded

    async def _load_fold(
        self, stream: str, max_version: int | None, *, use_snapshots: bool
    ) -> tuple[Loaded[S], _Fold[S]]:
        start = _Fold(self.type.decider.initial_state(), 0)
        snapshot_version = 0
        if use_snapshots:
            from_snapshot = await self._from_snapshot(stream, max_version)
            if from_snapshot is not None:
                start, snapshot_version = from_snapshot, from_snapshot.version
        fold = await self._fold(stream, start, max_version)
        loaded = Loaded(stream, fold.state, fold.version, snapshot_version, fold.count)
        policy = self.type.snapshots
        if (
            use_snapshots
            and policy is not None
            and self.snapshots is not None
            and max_version is None
            and fold.count >= policy.every
        ):
            # Loading replayed a long tail (no snapshot yet, an old state schema, snapshots
            # deleted, or folded under other lifecycle rules): keep the work for the next reader.
            await self._save_snapshot(stream, fold)
        return loaded, fold

    async def _from_snapshot(self, stream: str, max_version: int | None) -> _Fold[S] | None:
        """The fold state a usable snapshot gives, or None (no snapshot, or one not to trust)."""
        policy = self.type.snapshots
        if policy is None or self.snapshots is None:
            return None
        codec = policy.codec
        snapshot = await self.snapshots.latest(stream, codec.name, codec.schema_version, max_version)
        if snapshot is None:
            return None
        # The snapshot must have been folded from the events a replay would fold now. Lifecycle
        # rules hide a prefix of a stream (truncate-before, soft delete, retention) and may show
        # it again, so the first visible version must be the first one the snapshot folded:
        # otherwise it holds events now hidden, or lacks events shown again. This is normal
        # after a lifecycle change, so it is not worth a warning.
        first = await self.store.read_stream(stream, 1, 1)
        if not first or first[0].version != snapshot.first_version:
            log.debug("ignoring a snapshot folded under other lifecycle rules", extra={"stream": stream})
            return None
        # And it must describe this very stream: the event at its version must be the one it
        # was taken after (a database restored or recreated under it would fail this).
        if snapshot.version == first[0].version:
            anchor = first
        else:
            anchor = await self.store.read_stream(stream, snapshot.version, 1)
        if not anchor or anchor[0].version != snapshot.version or anchor[0].id != snapshot.event_id:
            log.warning("ignoring a snapshot that does not match its stream", extra={"stream": stream})
            return None
        try:
            state = codec.decode(snapshot.state)
        except (EventSchemaError, TypeError, ValueError, KeyError) as exc:
            log.warning("ignoring a snapshot that does not decode: %s", exc, extra={"stream": stream})
            return None
        return _Fold(state, snapshot.version, snapshot.event_id, first_version=snapshot.first_version)

    async def _fold(self, stream: str, fold: _Fold[S], max_version: int | None) -> _Fold[S]:
        decider = self.type.decider
        registry = self.type.events
        # The state being folded is private here (fresh from initial_state() or decoded from a
        # snapshot), so a decider that can change a state in place may do so.
        step = decider.evolve_in_place or decider.evolve
        state, version, last_id, count = fold.state, fold.version, fold.last_event_id, 0
        first, gapless = fold.first_version, fold.gapless
        while max_version is None or version < max_version:
            limit = self.page_size if max_version is None else min(self.page_size, max_version - version)
            page = await self.store.read_stream(stream, version + 1, limit)
            for recorded in page:
                # Versions can be missing (a truncated stream hides its first ones), so a page
                # may reach past `max_version`: the fold stops there.
                if max_version is not None and recorded.version > max_version:
                    return _Fold(state, version, last_id, count, first, gapless)
                if first == 0:
                    first = recorded.version
                elif recorded.version != version + 1:
                    # Within a fold, versions are consecutive unless a rule hid some meanwhile.
                    gapless = False
                event = registry.decode(recorded)
                # Tolerant reader: an unknown type still counts for the version, not the state.
                if not isinstance(event, UnknownEvent):
                    state = step(state, event)  # type: ignore[arg-type]
                version, last_id, count = recorded.version, recorded.id, count + 1
            if len(page) < limit:
                break
        return _Fold(state, version, last_id, count, first, gapless)

    async def _maybe_snapshot(self, stream: str, before: int, fold: _Fold[S]) -> None:
        policy = self.type.snapshots
        if policy is None or self.snapshots is None or not policy.due(before, fold.version):
            return
        await self._save_snapshot(stream, fold)

    async def _save_snapshot(self, stream: str, fold: _Fold[S]) -> Snapshot | None:
        policy = self.type.snapshots
        assert policy is not None and self.snapshots is not None
        if not fold.gapless or fold.first_version == 0:
            # Folded while a lifecycle rule changed: no single set of visible events gave
            # this state, so no later reader could check that it still applies.
            return None
        snapshot = Snapshot(
            stream=stream,
            state_type=policy.codec.name,
            schema_version=policy.codec.schema_version,
            version=fold.version,
            event_id=fold.last_event_id,
            state=policy.codec.encode(fold.state),
            first_version=fold.first_version,
        )
        try:
            await self.snapshots.save(snapshot)
        except Exception as exc:
            # A snapshot is an optimisation: failing to store one must not fail the command
            # whose events are already committed.
            log.warning("could not store a snapshot: %s", exc, extra={"stream": stream})
            return None
        return snapshot

    async def _version_at(self, stream: str, at: datetime) -> int:
        # Within a stream, recorded_at never decreases with the version (an append starts after
        # the previous event of its stream committed), so a binary search finds the boundary
        # in log2(n) one-event reads. Only the visible versions are searched: lifecycle rules
        # hide a prefix of a stream (truncation, retention) or all of it (soft delete).
        first = await self.store.read_stream(stream, 1, 1)
        if not first:
            return 0
        lo, hi = first[0].version - 1, await self.store.stream_version(stream)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            [event] = await self.store.read_stream(stream, mid, 1)
            if event.recorded_at <= at:
                lo = mid
            else:
                hi = mid - 1
        return lo


@dataclass(frozen=True, slots=True)
class Step(Generic[C]):
    """One command of `handle_together`: a repository, the entity and the command."""

    repository: Repository[C, Any, Any]
    entity_id: str
    command: C


async def handle_together(
    steps: Sequence[Step[Any]],
    context: CommandContext | None = None,
    *,
    max_retries: int = 10,
    retry_delay: float = 0.002,
) -> list[CommandResult[Any, Any]]:
    """Decide several commands, each on its own entity, and store all their events atomically.

    Every step is loaded and decided; the events of all of them go in one multi-stream append
    (`append_streams`), each stream expecting the version it was decided on. If any stream moved
    on meanwhile, all steps are loaded and decided again (up to `max_retries` times), so
    nothing is stored on a stale decision. A `CommandRejected` from any step stores nothing.
    The steps must be on different entities, and their repositories on one store that can
    append to several streams (`MultiStreamStore`: both Ilji stores). One result per step.
    """
    if not steps:
        return []
    store = steps[0].repository.store
    if any(step.repository.store is not store for step in steps):
        raise ValueError("handle_together: every step's repository must use the same store")
    if not isinstance(store, MultiStreamStore):
        raise TypeError(f"handle_together: {type(store).__name__} cannot append to several streams")
    context = context or CommandContext()
    attempt = 0
    while True:
        attempt += 1
        decided = []
        for step in steps:
            repo = step.repository
            stream = repo.stream(step.entity_id)
            loaded, fold = await repo._load_fold(stream, None, use_snapshots=True)
            events = list(repo.type.decider.decide(step.command, loaded.state))
            metadata = context.metadata(repo.clock())
            new_events = [repo.type.events.encode(event, metadata) for event in events]
            decided.append((step, stream, loaded, fold, events, new_events))
        parts = [(stream, new, loaded.version) for _, stream, loaded, _, _, new in decided if new]
        try:
            appended = iter(await store.append_streams(parts)) if parts else iter(())
        except WrongExpectedVersion:
            if attempt > max_retries:
                raise
            log.debug("version conflict in handle_together, reloading", extra={"attempt": attempt})
            await asyncio.sleep(random.uniform(0, min(0.1, retry_delay * 2 ** min(attempt, 10))))
            continue
        results: list[CommandResult[Any, Any]] = []
        for step, stream, loaded, fold, events, new_events in decided:
            repo = step.repository
            if not events:
                results.append(CommandResult(stream, [], loaded.state, loaded.version, None, attempt))
                continue
            result = next(appended)
            state = repo.type.decider.fold(events, loaded.state)
            folded = _Fold(
                state,
                result.last_version,
                new_events[-1].id,
                first_version=fold.first_version or result.first_version,
                gapless=fold.gapless,
            )
            await repo._maybe_snapshot(stream, loaded.version, folded)
            results.append(CommandResult(stream, events, state, result.last_version, result, attempt))
        return results
