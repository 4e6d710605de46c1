"""Property: whatever the history and snapshot policy, snapshot + tail equals a full replay."""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from ilji import MemoryEventStore
from ilji.app import Repository
from ilji.store.snapshots import MemorySnapshotStore
from tests.unit.test_app_repository import Add, WouldGoNegative, new_id, tally_decider, tally_type

# A history is a list of batches; each batch is a list of commands handled one after another,
# then optionally all snapshots are deleted (as an operator may do at any time).
amounts = st.integers(min_value=-5, max_value=20).filter(lambda n: n != 0)
histories = st.lists(
    st.tuples(st.lists(amounts, min_size=1, max_size=8), st.booleans()), min_size=1, max_size=8
)


@settings(max_examples=150, deadline=None)
@given(history=histories, every=st.integers(min_value=1, max_value=7), probe=st.integers(min_value=0))
def test_snapshot_plus_tail_equals_full_replay(
    history: list[tuple[list[int], bool]], every: int, probe: int
) -> None:
    asyncio.run(_check(history, every, probe))


async def _check(history: list[tuple[list[int], bool]], every: int, probe: int) -> None:
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    tallies = Repository(store, tally_type(every=every), snapshots=snapshots)
    entity = new_id()
    for batch, delete_snapshots in history:
        for amount in batch:
            # Refusals (the tally would go below zero) are part of random histories.
            with contextlib.suppress(WouldGoNegative):
                await tallies.handle(entity, Add(amount))
        if delete_snapshots:
            await snapshots.delete()
    recorded = await store.read_stream(tallies.stream(entity), 1, 10_000)
    full = tally_decider.fold(tally_type().events.decode(e) for e in recorded)  # type: ignore[misc]
    loaded = await tallies.load(entity)
    assert loaded.state == full
    assert loaded.version == len(recorded)
    version = probe % (len(recorded) + 1)
    prefix = tally_decider.fold(tally_type().events.decode(e) for e in recorded[:version])  # type: ignore[misc]
    assert (await tallies.state_at(entity, version=version)).state == prefix
