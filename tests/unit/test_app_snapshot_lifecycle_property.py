"""Property: whatever lifecycle rules hide or show again, `load()` equals a full replay.

Commands are mixed with soft deletes, restores, truncations, un-truncations, appends that
revive a deleted stream and retention rules set, relaxed and cleared. After every step the
state `Repository.load` gives (snapshot + tail) must equal a fold of the events a reader sees
now. `check_history` is shared with the PostgreSQL run in
tests/integration/test_snapshot_lifecycle.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ilji import MemoryEventStore, PostgresEventStore, WrongExpectedVersion
from ilji.app import AggregateType, DataclassStateCodec, Repository, SnapshotPolicy
from ilji.store.snapshots import MemorySnapshotStore, SnapshotStore
from tests.unit.test_app_repository import Add, Added, Tally, WouldGoNegative, tally_decider, tally_events

# One step of a history: ("command", amount), ("append", amount), ("delete",), ("restore",),
# ("truncate", n) with `before` = n modulo the version + 1, plus 1, ("untruncate",),
# ("retain", max_count), ("unretain",).
Step = tuple[Any, ...]
steps = st.one_of(
    st.tuples(st.just("command"), st.integers(min_value=-5, max_value=20).filter(bool)),
    st.tuples(st.just("command"), st.integers(min_value=1, max_value=20)),
    st.tuples(st.just("append"), st.integers(min_value=1, max_value=20)),
    st.tuples(st.just("delete")),
    st.tuples(st.just("restore")),
    st.tuples(st.just("truncate"), st.integers(min_value=0, max_value=1000)),
    st.tuples(st.just("untruncate")),
    st.tuples(st.just("retain"), st.integers(min_value=1, max_value=12)),
    st.tuples(st.just("unretain")),
)
histories = st.lists(steps, min_size=1, max_size=30)

Store = MemoryEventStore | PostgresEventStore


def lifecycle_tally_type(every: int) -> AggregateType[Add, Any, Tally]:
    """The tally with snapshots, in a category of its own (retention rules are per category)."""
    policy = SnapshotPolicy(every=every, codec=DataclassStateCodec(Tally))
    return AggregateType(f"tally{uuid.uuid4().hex[:12]}", tally_decider, tally_events, policy)


async def check_history(store: Store, snapshots: SnapshotStore, history: list[Step], every: int) -> None:
    """Run `history`; after each step, loading must agree with a replay of the visible events."""
    aggregate = lifecycle_tally_type(every)
    # No retries: a command on a stream whose events are all hidden fails at once.
    tallies = Repository(store, aggregate, snapshots=snapshots, max_retries=0)
    entity = uuid.uuid4().hex
    stream = tallies.stream(entity)
    for step in history:
        await _run(store, tallies, aggregate, stream, entity, step)
        visible = await store.read_stream(stream, 1, 10_000)
        replayed = tally_decider.fold(aggregate.events.decode(e) for e in visible)  # type: ignore[misc]
        loaded = await tallies.load(entity)
        assert (loaded.version, loaded.state) == (visible[-1].version if visible else 0, replayed), step


async def _run(
    store: Store,
    tallies: Repository[Add, Any, Tally],
    aggregate: AggregateType[Add, Any, Tally],
    stream: str,
    entity: str,
    step: Step,
) -> None:
    version = await store.stream_version(stream)
    match step:
        case ("command", amount):
            # Refusals (below zero) and commands on a stream with nothing visible are part of
            # random histories: the latter load as version 0 and lose the append's race.
            with contextlib.suppress(WouldGoNegative, WrongExpectedVersion):
                await tallies.handle(entity, Add(amount))
        case ("append", amount):
            await store.append(stream, [aggregate.events.encode(Added(amount))])
        case ("delete",) if version:
            await store.delete_stream(stream)
        case ("restore",) if version:
            await store.restore_stream(stream)
        case ("truncate", n) if version:
            await store.truncate_stream(stream, n % (version + 1) + 1)
        case ("untruncate",) if version:
            await store.truncate_stream(stream, 1)
        case ("retain", max_count):
            await store.set_retention(aggregate.category, max_count=max_count)
        case ("unretain",):
            await store.clear_retention(aggregate.category)


@settings(max_examples=200, deadline=None)
@given(history=histories, every=st.integers(min_value=1, max_value=4))
def test_load_equals_a_full_replay_whatever_the_lifecycle_rules_did(history: list[Step], every: int) -> None:
    asyncio.run(check_history(MemoryEventStore(), MemorySnapshotStore(), history, every))
