"""`StreamCheckpointStore` keeps checkpoints in `$checkpoint-<name>`, out of the global log (both stores)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ilji import NewEvent, ValidationError, WrongExpectedVersion
from ilji.app import ProjectionRunner, StreamCheckpointStore
from ilji.domain.events import RecordedEvent
from ilji.store.port import SystemStreamStore


class Seen:
    """A projection that remembers every event it was given."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[RecordedEvent] = []

    async def handle(self, event: RecordedEvent) -> None:
        self.events.append(event)


async def head(store: SystemStreamStore) -> int:
    everything = await store.read_all(0, 10_000)
    return everything[-1].position if everything else 0


async def test_checkpoints_stay_out_of_the_global_log(any_store: SystemStreamStore) -> None:
    tag = uuid.uuid4().hex[:8]
    start = await head(any_store)
    for n in range(3):
        await any_store.append(f"shop{tag}-{n}", [NewEvent("Sold", {"n": n})])
    name = f"sales{tag}"
    projection = Seen(name)
    assert await ProjectionRunner(any_store, projection, StreamCheckpointStore(any_store)).catch_up() >= 3
    await any_store.append(f"shop{tag}-9", [NewEvent("Sold", {"n": 9})])
    assert await ProjectionRunner(any_store, projection, StreamCheckpointStore(any_store)).catch_up() == 1

    # The global log (what SSE, workers and `ilji tail` read) holds the domain events only.
    log = await any_store.read_all(start, 10_000)
    assert {e.stream for e in log} == {f"shop{tag}-{n}" for n in (0, 1, 2, 9)}
    followed = []
    follower = any_store.follow(start)
    while len(followed) < len(log):
        followed.append(await asyncio.wait_for(anext(follower), 30))
    assert [e.id for e in followed] == [e.id for e in log]
    await follower.aclose()
    # The checkpoints are Ilji's own stream, readable by name.
    saved = await any_store.read_stream(f"$checkpoint-{name}")
    assert [e.data["position"] for e in saved] == [log[2].position, log[3].position]
    assert {e.category for e in saved} == {"$checkpoint"}


async def test_checkpoints_saved_in_the_old_stream_are_still_read(any_store: SystemStreamStore) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"legacy{tag}"
    first = await any_store.append(f"shop{tag}-1", [NewEvent("Sold", {"n": 1})])
    # What an earlier version saved: an ordinary stream `projection_checkpoint-<name>`.
    await any_store.append(
        f"projection_checkpoint-{name}", [NewEvent("CheckpointSaved", {"position": first.last_position})]
    )
    await any_store.append(f"shop{tag}-2", [NewEvent("Sold", {"n": 2})])
    checkpoints = StreamCheckpointStore(any_store)
    assert await checkpoints.load(name) == first.last_position

    projection = Seen(name)
    runner = ProjectionRunner(any_store, projection, checkpoints, category=None)
    handled = await runner.catch_up()
    # It resumed after the old checkpoint, and never delivered the old checkpoint event.
    assert [e.stream for e in projection.events if e.stream.startswith(f"shop{tag}")] == [f"shop{tag}-2"]
    assert not any(e.category == "projection_checkpoint" for e in projection.events)
    assert handled == len(projection.events)
    # The next save went to the new stream, which now wins.
    newest = await StreamCheckpointStore(any_store).load(name)
    assert newest == projection.events[-1].position
    assert await any_store.stream_version(f"$checkpoint-{name}") == 1


async def test_two_savers_of_one_checkpoint_conflict(any_store: SystemStreamStore) -> None:
    name = f"twice{uuid.uuid4().hex[:8]}"
    mine, theirs = StreamCheckpointStore(any_store), StreamCheckpointStore(any_store)
    await mine.load(name)
    await theirs.load(name)
    await mine.save(name, 10)
    with pytest.raises(WrongExpectedVersion):
        await theirs.save(name, 20)
    assert await StreamCheckpointStore(any_store).load(name) == 10


@pytest.mark.parametrize(
    "stream", ["$audit", "$lifecycle", "$checkpoint", "$other-x", "plain-x", "", "$checkpoint-a b"]
)
async def test_only_checkpoint_streams_take_system_appends(any_store: SystemStreamStore, stream: str) -> None:
    with pytest.raises(ValidationError) as info:
        await any_store.append_system_stream(stream, [NewEvent("CheckpointSaved", {"position": 1})])
    assert info.value.field == "stream"
    # And ordinary appends still refuse every `$` stream.
    with pytest.raises(ValidationError):
        await any_store.append("$checkpoint-x", [NewEvent("CheckpointSaved", {"position": 1})])
