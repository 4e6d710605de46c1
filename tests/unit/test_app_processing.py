"""The InProcessProjection interface, its runner, checkpoints and silent replays."""

from __future__ import annotations

import asyncio

import pytest

from ilji import MemoryEventStore, NewEvent, WrongExpectedVersion
from ilji.app import (
    InProcessProjection,
    MemoryCheckpointStore,
    ProjectionRunner,
    SilentDuringReplay,
    StreamCheckpointStore,
    is_replaying,
)
from ilji.domain.events import RecordedEvent


class Counter:
    """Counts events by type, and pings a gateway for each `Ping` (live only)."""

    name = "counter"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.replayed: list[bool] = []
        self.sent: list[str] = []
        self.ping = SilentDuringReplay(self._send)

    async def _send(self, what: str) -> None:
        self.sent.append(what)

    async def handle(self, event: RecordedEvent) -> None:
        self.seen.append(event.type)
        self.replayed.append(is_replaying())
        if event.type == "Ping":
            await self.ping(event.stream)

    async def reset(self) -> None:
        self.seen.clear()


async def fill(store: MemoryEventStore, *types: str, stream: str = "thing-1") -> None:
    await store.append(stream, [NewEvent(t) for t in types])


async def test_catch_up_resumes_from_the_checkpoint() -> None:
    store, checkpoints, counter = MemoryEventStore(), MemoryCheckpointStore(), Counter()
    assert isinstance(counter, InProcessProjection)
    runner = ProjectionRunner(store, counter, checkpoints, batch_size=2)
    await fill(store, "A", "B", "Ping")
    assert await runner.catch_up() == 3
    assert checkpoints.positions["counter"] == 3
    await fill(store, "C")
    assert await runner.catch_up() == 1
    assert counter.seen == ["A", "B", "Ping", "C"]
    assert counter.sent == ["thing-1"]


async def test_a_category_and_type_filter() -> None:
    store, counter = MemoryEventStore(), Counter()
    await fill(store, "A", "B", stream="thing-1")
    await fill(store, "A", stream="other-1")
    runner = ProjectionRunner(store, counter, MemoryCheckpointStore(), category="thing", types=["A"])
    await runner.catch_up()
    assert counter.seen == ["A"]


async def test_rebuild_replays_everything_with_gateways_silent() -> None:
    store, counter = MemoryEventStore(), Counter()
    runner = ProjectionRunner(store, counter, MemoryCheckpointStore())
    await fill(store, "Ping", "A")
    await runner.catch_up()
    assert await runner.rebuild() == 2
    assert counter.seen == ["Ping", "A"]  # reset, then replayed
    assert counter.replayed == [False, False, True, True]
    assert counter.sent == ["thing-1"]
    assert counter.ping.suppressed == 1
    assert not is_replaying()


async def test_stream_checkpoints_survive_a_new_runner_and_refuse_a_second_writer() -> None:
    store = MemoryEventStore()
    await fill(store, "A", "B")
    first = ProjectionRunner(store, Counter(), StreamCheckpointStore(store))
    await first.catch_up()
    position = await StreamCheckpointStore(store).load("counter")
    assert position == 2
    await fill(store, "C")
    second_counter = Counter()
    second = ProjectionRunner(store, second_counter, StreamCheckpointStore(store))
    await second.catch_up()
    assert second_counter.seen == ["C"]
    # Two runners of one projection at once: the one that saves second learns about the other.
    mine, theirs = StreamCheckpointStore(store), StreamCheckpointStore(store)
    await mine.load("counter")
    await theirs.load("counter")
    await theirs.save("counter", 3)
    with pytest.raises(WrongExpectedVersion):
        await mine.save("counter", 3)


async def test_run_follows_live_events_and_saves_its_position_when_stopped() -> None:
    store, checkpoints, counter = MemoryEventStore(), MemoryCheckpointStore(), Counter()
    runner = ProjectionRunner(store, counter, checkpoints)
    task = asyncio.create_task(runner.run(checkpoint_every=1000))
    await fill(store, "A")
    await fill(store, "B")
    for _ in range(100):
        if len(counter.seen) == 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert counter.seen == ["A", "B"]
    assert checkpoints.positions["counter"] == 2
