"""In-process projections: read models and process managers fed by a runner in this process.

An `InProcessProjection` has a `name` and an async `handle(event)`. A `ProjectionRunner` feeds
it the global log (optionally one category, or some event types) from its last checkpoint,
saving the checkpoint after each page. Delivery is at least once: after a crash between
`handle` and the checkpoint, events are handled again, so projections must be idempotent (skip
what they have seen, or rely on deciders that treat a repeated command as done).

Which projection to write: an `InProcessProjection` for a read model held in memory, a process
manager that issues commands, or a test; it needs no table and runs wherever its runner runs.
For a read model in PostgreSQL tables, applied exactly once, shared by several processes and
rebuilt without downtime, write an `ilji.projections.Projection` and run it in a worker. The
contracts differ (a worker's `handle` gets the connection of the transaction that also moves
its checkpoint, and a `Context`), so moving code from here to there means rewriting its handler.

Replays: `ProjectionRunner.rebuild()` resets a projection and handles the whole log again with
`is_replaying()` true, so gateways to the outside world (wrapped in `SilentDuringReplay`) stay
silent instead of repeating notifications that were already sent.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from ilji.domain.events import NewEvent, RecordedEvent
from ilji.store.audit import CHECKPOINT_CATEGORY
from ilji.store.port import EventStore, SystemStreamStore

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Where `StreamCheckpointStore` kept checkpoints before they moved to `$checkpoint-<name>`:
#: ordinary streams, so their events are in the global log and runners skip them.
LEGACY_CHECKPOINT_CATEGORY = "projection_checkpoint"

_replaying: contextvars.ContextVar[bool] = contextvars.ContextVar("ilji_replaying", default=False)


def is_replaying() -> bool:
    """True while a runner replays history (`rebuild`): side effects must not happen again."""
    return _replaying.get()


@runtime_checkable
class InProcessProjection(Protocol):
    """Something that reacts to events in this process: a read model, or a process manager."""

    name: str

    async def handle(self, event: RecordedEvent) -> None:
        """React to one event (idempotently: the same event may be delivered twice)."""
        ...


@runtime_checkable
class Resettable(Protocol):
    """A projection that can forget everything, to be rebuilt from the log."""

    async def reset(self) -> None:
        """Drop everything derived so far."""
        ...


class CheckpointStore(Protocol):
    """Where a projection's position in the global log is kept."""

    async def load(self, name: str) -> int:
        """The last position `name` handled (0 when it never ran)."""
        ...

    async def save(self, name: str, position: int) -> None:
        """Remember that `name` handled everything up to `position`."""
        ...


class MemoryCheckpointStore:
    """Checkpoints in a dict (tests, and read models that are rebuilt at every start)."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}

    async def load(self, name: str) -> int:
        """The saved position, or 0."""
        return self.positions.get(name, 0)

    async def save(self, name: str, position: int) -> None:
        """Save the position."""
        self.positions[name] = position


class StreamCheckpointStore:
    """Checkpoints as events in Ilji's own stream `$checkpoint-<name>` of the event store itself.

    It needs no table of its own, which suits examples and small deployments. Each save appends
    one small event, expecting the version it last saw, so two runners of the same projection
    cannot both move its checkpoint without one of them failing loudly. Like every `$` stream,
    the checkpoint streams stay out of the global log: SSE, projection workers and `ilji tail`
    never see them.

    Checkpoints saved before they moved there, in the ordinary stream
    `projection_checkpoint-<name>`, are still read: `load` falls back to it while the new
    stream is empty, and the next save continues in the new stream.
    """

    CATEGORY = CHECKPOINT_CATEGORY
    EVENT_TYPE = "CheckpointSaved"

    def __init__(self, store: SystemStreamStore) -> None:
        self.store = store
        self._versions: dict[str, int] = {}

    @staticmethod
    def stream(name: str) -> str:
        """The stream that holds a projection's checkpoints."""
        return f"{CHECKPOINT_CATEGORY}-{name}"

    @staticmethod
    def legacy_stream(name: str) -> str:
        """The ordinary stream where earlier versions kept a projection's checkpoints."""
        return f"{LEGACY_CHECKPOINT_CATEGORY}-{name}"

    async def load(self, name: str) -> int:
        """The newest saved position, or 0."""
        newest = await self.store.read_stream(self.stream(name), None, 1, "backward")
        self._versions[name] = newest[0].version if newest else 0
        if not newest:
            newest = await self.store.read_stream(self.legacy_stream(name), None, 1, "backward")
        return int(newest[0].data["position"]) if newest else 0

    async def save(self, name: str, position: int) -> None:
        """Append the new position (fails with `WrongExpectedVersion` if another runner moved it)."""
        if name not in self._versions:
            await self.load(name)
        self._versions[name] = await self.store.append_system_stream(
            self.stream(name), [NewEvent(self.EVENT_TYPE, {"position": position})], self._versions[name]
        )


class ProjectionRunner:
    """Feeds one `InProcessProjection` the global log from its checkpoint, in order, in this process."""

    def __init__(
        self,
        store: EventStore,
        projection: InProcessProjection,
        checkpoints: CheckpointStore,
        *,
        category: str | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> None:
        self.store = store
        self.projection = projection
        self.checkpoints = checkpoints
        self.category = category
        self.types = list(types) if types is not None else None
        self.batch_size = batch_size

    async def _page(self, after: int) -> list[RecordedEvent]:
        if self.category is None:
            return await self.store.read_all(after, self.batch_size, self.types)
        return await self.store.read_category(self.category, after, self.batch_size, self.types)

    async def catch_up(self) -> int:
        """Handle every event after the checkpoint, up to the end of the log; returns how many."""
        name = self.projection.name
        position = await self.checkpoints.load(name)
        handled = 0
        while page := await self._page(position):
            in_page = 0
            for event in page:
                if _bookkeeping(event):
                    continue
                await self.projection.handle(event)
                in_page += 1
            position = page[-1].position
            # A page of old checkpoint events only (from before they moved to `$checkpoint`)
            # is skipped without saving: there is nothing new to remember.
            if in_page:
                await self.checkpoints.save(name, position)
                handled += in_page
        if handled:
            log.info("projection caught up", extra={"projection": name, "events": handled})
        return handled

    async def rebuild(self) -> int:
        """Forget everything and handle the whole log again, with `is_replaying()` true."""
        if isinstance(self.projection, Resettable):
            await self.projection.reset()
        await self.checkpoints.save(self.projection.name, 0)
        token = _replaying.set(True)
        try:
            return await self.catch_up()
        finally:
            _replaying.reset(token)

    async def run(self, *, checkpoint_every: int = 100) -> None:
        """Catch up, then follow new events forever (cancel the task to stop)."""
        name = self.projection.name
        position = await self.checkpoints.load(name)
        unsaved = 0
        try:
            async for event in self.store.follow(position, category=self.category, types=self.types):
                if _bookkeeping(event):
                    continue
                await self.projection.handle(event)
                position, unsaved = event.position, unsaved + 1
                if unsaved >= checkpoint_every:
                    await self.checkpoints.save(name, position)
                    unsaved = 0
        finally:
            if unsaved:
                await self.checkpoints.save(name, position)


def _bookkeeping(event: RecordedEvent) -> bool:
    """Whether `event` is a checkpoint saved in an ordinary stream by an earlier version.

    New checkpoints are in `$checkpoint` streams, which the global log leaves out; the old
    ones stay in the log (events are never removed), and no projection should see them.
    """
    return event.category == LEGACY_CHECKPOINT_CATEGORY


class SilentDuringReplay:
    """Calls an async side effect live, and does nothing (but count) while replaying.

    Wrap each gateway method that changes the outside world, for example
    `SilentDuringReplay(customs.notify)`.
    """

    def __init__(self, effect: Callable[..., Awaitable[Any]]) -> None:
        self.effect = effect
        self.suppressed = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        """Run the effect unless a replay is in progress."""
        if is_replaying():
            self.suppressed += 1
            return
        await self.effect(*args, **kwargs)
