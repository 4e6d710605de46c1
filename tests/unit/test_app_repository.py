"""Command handling, snapshots and temporal queries on the in-memory store.

The `tally` model defined here is reused by the PostgreSQL integration tests.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ilji import ANY, MemoryEventStore, NewEvent, WrongExpectedVersion
from ilji.app import (
    AggregateRoot,
    AggregateType,
    CommandContext,
    CommandRejected,
    DataclassStateCodec,
    Decider,
    EventRegistry,
    Repository,
    SnapshotPolicy,
    UnknownEvent,
    aggregate_decider,
)
from ilji.domain.events import AppendResult, ExpectedVersion, RecordedEvent
from ilji.store.snapshots import MemorySnapshotStore, Snapshot
from ilji.testing import StepClock

# -- a small model: a tally that never goes below zero ------------------------------------------

tally_events = EventRegistry()


@tally_events.register
@dataclass(frozen=True)
class Added:
    amount: int


@tally_events.register
@dataclass(frozen=True)
class Removed:
    amount: int


@dataclass(frozen=True)
class Add:
    amount: int


@dataclass(frozen=True)
class Tally:
    total: int = 0
    count: int = 0
    amounts: tuple[int, ...] = ()


class WouldGoNegative(CommandRejected):
    code = "would-go-negative"


def decide_tally(command: Add, state: Tally) -> list[Added | Removed]:
    if command.amount == 0:
        return []
    if state.total + command.amount < 0:
        raise WouldGoNegative(f"{state.total} + {command.amount} < 0")
    return [Added(command.amount)] if command.amount > 0 else [Removed(-command.amount)]


def evolve_tally(state: Tally, event: Added | Removed) -> Tally:
    delta = event.amount if isinstance(event, Added) else -event.amount
    return replace(state, total=state.total + delta, count=state.count + 1, amounts=(*state.amounts, delta))


tally_decider: Decider[Add, Added | Removed, Tally] = Decider(decide_tally, evolve_tally, Tally)


def tally_type(every: int | None = None, schema_version: int = 1) -> AggregateType[Add, Any, Tally]:
    policy = (
        SnapshotPolicy(every=every, codec=DataclassStateCodec(Tally, schema_version=schema_version))
        if every
        else None
    )
    return AggregateType("tally", tally_decider, tally_events, policy)


def new_id() -> str:
    return uuid.uuid4().hex


# -- command handling ----------------------------------------------------------------------------


async def test_handle_appends_the_decided_events_with_the_command_metadata() -> None:
    store = MemoryEventStore()
    clock = StepClock(datetime(2026, 1, 1, tzinfo=UTC))
    tallies = Repository(store, tally_type(), clock=clock)
    entity = new_id()
    context = CommandContext(user="ann", correlation_id="conv-1", extra={"tenant": "t1"})
    result = await tallies.handle(entity, Add(5), context)
    assert result.events == [Added(5)]
    assert (result.version, result.attempts, result.state) == (1, 1, Tally(5, 1, (5,)))
    [stored] = await store.read_stream(tallies.stream(entity))
    assert stored.type == "Added"
    assert stored.data == {"amount": 5}
    assert stored.metadata == {
        "tenant": "t1",
        "command_id": str(context.command_id),
        "correlation_id": "conv-1",
        "causation_id": str(context.command_id),
        "time": "2026-01-01T00:00:00+00:00",
        "user": "ann",
        "schema_version": 1,
    }


async def test_a_command_that_decides_nothing_appends_nothing() -> None:
    store = MemoryEventStore()
    tallies = Repository(store, tally_type())
    entity = new_id()
    await tallies.handle(entity, Add(1))
    result = await tallies.handle(entity, Add(0))
    assert (result.events, result.append, result.version) == ([], None, 1)
    assert await store.stream_version(tallies.stream(entity)) == 1


async def test_a_rejected_command_is_not_retried_and_records_nothing() -> None:
    store = MemoryEventStore()
    tallies = Repository(store, tally_type())
    entity = new_id()
    with pytest.raises(WouldGoNegative):
        await tallies.handle(entity, Add(-1))
    assert await store.stream_version(tallies.stream(entity)) == 0


class RacingStore(MemoryEventStore):
    """Before each of the first `races` appends, another writer appends to the same stream."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        if self.races > 0:
            self.races -= 1
            await super().append(stream, [tally_events.encode(Added(100))])
        return await super().append(stream, events, expected_version)


async def test_a_version_conflict_reloads_and_decides_again() -> None:
    store = RacingStore(races=3)
    tallies = Repository(store, tally_type(), retry_delay=0)
    entity = new_id()
    result = await tallies.handle(entity, Add(5))
    # Three other writers got in first; the final decision was made on the state that includes
    # their events, and appended after them.
    assert result.attempts == 4
    assert result.state.total == 305
    assert result.version == 4
    assert result.state.amounts == (100, 100, 100, 5)


async def test_an_expected_version_is_a_precondition_and_never_retried() -> None:
    store = RacingStore(races=0)
    tallies = Repository(store, tally_type(), retry_delay=0)
    entity = new_id()
    await tallies.handle(entity, Add(1))
    with pytest.raises(WrongExpectedVersion) as stale:
        await tallies.handle(entity, Add(1), expected_version=0)
    assert (stale.value.expected, stale.value.actual) == (0, 1)
    assert (await tallies.handle(entity, Add(1), expected_version=1)).version == 2
    store.races = 1  # someone appends between our load and our append
    with pytest.raises(WrongExpectedVersion):
        await tallies.handle(entity, Add(1), expected_version=2)
    assert store.races == 0
    assert await store.stream_version(tallies.stream(entity)) == 3


async def test_retries_are_bounded() -> None:
    store = RacingStore(races=100)
    tallies = Repository(store, tally_type(), max_retries=2, retry_delay=0)
    with pytest.raises(WrongExpectedVersion):
        await tallies.handle(new_id(), Add(1))
    assert store.races == 97  # three attempts


def test_caused_by_carries_the_correlation_over() -> None:
    event_id = uuid.uuid4()
    recorded = RecordedEvent(
        event_id, "s-1", 1, 1, "X", {}, {"correlation_id": "conv-9", "user": "bob"}, datetime.now(UTC)
    )
    context = CommandContext.caused_by(recorded)
    assert (context.correlation_id, context.causation_id, context.user) == ("conv-9", str(event_id), "bob")


# -- snapshots -----------------------------------------------------------------------------------


async def test_snapshots_are_taken_every_n_events_and_used_on_load() -> None:
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    tallies = Repository(store, tally_type(every=3), snapshots=snapshots)
    entity = new_id()
    for amount in range(1, 8):
        await tallies.handle(entity, Add(amount))
    stream = tallies.stream(entity)
    assert [s.version for s in [await snapshots.latest(stream, "Tally", 1, v) for v in (3, 6)] if s] == [3, 6]
    loaded = await tallies.load(entity)
    assert (loaded.version, loaded.snapshot_version, loaded.events_folded) == (7, 6, 1)
    assert loaded.state == (await tallies.load(entity, use_snapshots=False)).state
    assert await snapshots.delete(stream) == 2
    again = await tallies.load(entity)
    assert (again.state, again.snapshot_version) == (loaded.state, 0)


async def test_loading_a_long_tail_stores_a_snapshot_for_the_next_reader() -> None:
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    plain = Repository(store, tally_type())
    entity = new_id()
    for _ in range(5):
        await plain.handle(entity, Add(1))
    tallies = Repository(store, tally_type(every=4), snapshots=snapshots)
    first = await tallies.load(entity)
    assert first.snapshot_version == 0
    second = await tallies.load(entity)
    assert (second.snapshot_version, second.events_folded, second.state) == (5, 0, first.state)


async def test_a_snapshot_of_an_older_state_schema_is_ignored() -> None:
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    entity = new_id()
    old = Repository(store, tally_type(every=2, schema_version=1), snapshots=snapshots)
    for _ in range(4):
        await old.handle(entity, Add(1))
    new = Repository(store, tally_type(every=100, schema_version=2), snapshots=snapshots)
    loaded = await new.load(entity)
    assert (loaded.snapshot_version, loaded.events_folded, loaded.state.total) == (0, 4, 4)


async def test_a_snapshot_that_does_not_match_its_stream_is_ignored() -> None:
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    tallies = Repository(store, tally_type(every=100), snapshots=snapshots)
    entity = new_id()
    stream = tallies.stream(entity)
    for _ in range(3):
        await tallies.handle(entity, Add(1))
    lie = Tally(999, 2, (999,))
    codec = DataclassStateCodec(Tally)
    # An unknown event id at version 2, a version beyond the stream, and a state that does not decode.
    await snapshots.save(Snapshot(stream, "Tally", 1, 2, uuid.uuid4(), codec.encode(lie)))
    assert (await tallies.load(entity)).state.total == 3
    await snapshots.delete()
    await snapshots.save(Snapshot(stream, "Tally", 1, 9, uuid.uuid4(), codec.encode(lie)))
    assert (await tallies.load(entity)).state.total == 3
    await snapshots.delete()
    [second] = await store.read_stream(stream, 2, 1)
    await snapshots.save(Snapshot(stream, "Tally", 1, 2, second.id, {"total": "lots"}))
    loaded = await tallies.load(entity)
    assert (loaded.state.total, loaded.snapshot_version) == (3, 0)


async def test_snapshot_failures_do_not_fail_the_command() -> None:
    class BrokenSnapshots(MemorySnapshotStore):
        async def save(self, snapshot: Snapshot) -> None:
            raise OSError("disk full")

    tallies = Repository(MemoryEventStore(), tally_type(every=1), snapshots=BrokenSnapshots())
    result = await tallies.handle(new_id(), Add(1))
    assert result.version == 1


async def test_take_snapshot_on_demand() -> None:
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    tallies = Repository(store, tally_type(every=1000), snapshots=snapshots)
    entity = new_id()
    assert await tallies.take_snapshot(entity) is None
    await tallies.handle(entity, Add(2))
    snapshot = await tallies.take_snapshot(entity)
    assert snapshot is not None
    assert (snapshot.version, dict(snapshot.state)) == (1, {"total": 2, "count": 1, "amounts": [2]})


# -- temporal queries ---------------------------------------------------------------------------


async def test_state_as_of_a_version_and_as_of_a_time() -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    store = MemoryEventStore(clock=StepClock(start, timedelta(minutes=1)))
    tallies = Repository(store, tally_type(every=2), snapshots=MemorySnapshotStore())
    entity = new_id()
    for amount in (1, 2, 3, 4, 5):
        await tallies.handle(entity, Add(amount))
    assert (await tallies.state_at(entity, version=3)).state.total == 6
    assert (await tallies.state_at(entity, version=0)).state == Tally()
    assert (await tallies.state_at(entity, version=99)).version == 5
    # Events were recorded at start, start+1min, ...: at start+2min30s three of them existed.
    as_of = await tallies.state_at(entity, at=start + timedelta(minutes=2, seconds=30))
    assert (as_of.version, as_of.state.total) == (3, 6)
    assert await tallies.version_at(entity, start - timedelta(seconds=1)) == 0
    assert await tallies.version_at(entity, start) == 1
    assert await tallies.version_at(entity, start + timedelta(days=1)) == 5
    with pytest.raises(ValueError, match="exactly one"):
        await tallies.state_at(entity)


async def test_temporal_queries_see_only_what_lifecycle_rules_leave_visible() -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    store = MemoryEventStore(clock=StepClock(start, timedelta(minutes=1)))
    tallies = Repository(store, tally_type())
    entity = new_id()
    for amount in (1, 2, 3, 4, 5, 6):
        await tallies.handle(entity, Add(amount))  # versions 1..6 at start, start+1min, ...
    await store.truncate_stream(tallies.stream(entity), 4)  # versions 1..3 hidden
    # As of version 2 nothing visible had happened; as of 5, versions 4 and 5 only.
    assert (await tallies.state_at(entity, version=2)).version == 0
    as_of_5 = await tallies.state_at(entity, version=5)
    assert (as_of_5.version, list(as_of_5.state.amounts)) == (5, [4, 5])
    assert await tallies.version_at(entity, start + timedelta(minutes=1)) == 3  # before the first visible
    assert await tallies.version_at(entity, start + timedelta(minutes=4, seconds=30)) == 5
    await store.delete_stream(tallies.stream(entity))
    assert await tallies.version_at(entity, start + timedelta(days=1)) == 0


async def test_history_gives_each_event_and_the_state_after_it() -> None:
    store = MemoryEventStore()
    tallies = Repository(store, tally_type())
    entity = new_id()
    for amount in (3, -1, 4):
        await tallies.handle(entity, Add(amount))
    history = await tallies.history(entity)
    assert [e.event for e in history] == [Added(3), Removed(1), Added(4)]
    assert [e.state.total for e in history] == [3, 2, 6]
    assert [e.recorded.version for e in history] == [1, 2, 3]


async def test_unknown_event_types_count_for_the_version_but_not_the_state() -> None:
    store = MemoryEventStore()
    tallies = Repository(store, tally_type())
    entity = new_id()
    await tallies.handle(entity, Add(1))
    await store.append(tallies.stream(entity), [NewEvent("AddedByAFutureVersion", {"amount": 50})])
    result = await tallies.handle(entity, Add(1))
    assert (result.version, result.state.total) == (3, 2)
    history = await tallies.history(entity)
    assert isinstance(history[1].event, UnknownEvent)
    assert history[1].state.total == 1


# -- the aggregate-class style ---------------------------------------------------------------


@tally_events.register
@dataclass(frozen=True)
class Noted:
    text: str


@dataclass
class Notebook(AggregateRoot[Noted]):
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text in self.notes:
            return
        if not text:
            raise CommandRejected("empty note")
        self.record(Noted(text))

    def apply(self, event: Noted) -> None:
        self.notes.append(event.text)


notebook_type: AggregateType[Any, Any, Notebook] = AggregateType(
    "notebook",
    aggregate_decider(Notebook),
    tally_events,
    SnapshotPolicy(every=2, codec=DataclassStateCodec(Notebook)),
)


async def test_aggregate_classes_run_on_the_same_machinery() -> None:
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    notebooks = Repository(store, notebook_type, snapshots=snapshots)
    entity = new_id()
    for text in ("a", "b", "a", "c"):
        await notebooks.handle(entity, lambda n, t=text: n.note(t))
    loaded = await notebooks.load(entity)
    assert (loaded.state.notes, loaded.version, loaded.snapshot_version) == (["a", "b", "c"], 3, 2)
    with pytest.raises(CommandRejected):
        await notebooks.handle(entity, lambda n: n.note(""))
    history = await notebooks.history(entity)
    assert [h.state.notes for h in history] == [["a"], ["a", "b"], ["a", "b", "c"]]


def test_aggregate_decider_does_not_mutate_its_inputs() -> None:
    decider = aggregate_decider(Notebook)
    state = Notebook(["a"])
    before = copy.deepcopy(state)
    assert decider.decide(lambda n: n.note("b"), state) == [Noted("b")]
    after = decider.evolve(state, Noted("b"))
    assert state == before
    assert after.notes == ["a", "b"]
    assert after.pending_events == []
