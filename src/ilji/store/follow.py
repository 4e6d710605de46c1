"""Live following of the global log: coalesced NOTIFY after commit, LISTEN, and polling.

Appenders never NOTIFY inside their transaction (that takes a cluster-wide lock until
commit). Instead each process pokes a `Notifier`, which sends at most one NOTIFY at a time
after the commits it covers. Followers share one `Listener` connection per process and
re-read the log when woken. Notifications are only hints: a follower also polls, so it
makes progress when notifications are lost, when another process appends without a
notifier, or when an older open transaction keeps new events invisible for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ilji.domain.errors import StoreUnavailable
from ilji.domain.events import RecordedEvent
from ilji.store import sql
from ilji.store.database import Database, connect
from ilji.store.wake import Backoff, WakeSchedule

log = logging.getLogger(__name__)

CHANNEL = "ilji_events"
_NOTIFY = sql.load("notify")

# At most one NOTIFY per interval from each process: under load, one notification covers
# many appends, and a lone append still wakes followers at once.
MIN_NOTIFY_INTERVAL = 0.01


async def _stop(task: asyncio.Task[None] | None, grace: float = 2.0) -> None:
    # psycopg may turn a cancellation during a query into a database error, which a
    # background loop would swallow; loops therefore also watch a closed flag, and are
    # cancelled only if they do not end by themselves within the grace period.
    if task is None or task.done():
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except (TimeoutError, Exception):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class Notifier:
    """Sends `NOTIFY ilji_events` after appends, coalescing bursts into one notification."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: Notifications sent (a metric: appends per notification shows the coalescing).
        self.sent = 0

    def poke(self) -> None:
        """Ask for a notification soon; cheap, never blocks, never fails."""
        if self._closed:
            return
        self._wanted.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ilji-notifier")

    async def _run(self) -> None:
        while not self._closed:
            await self._wanted.wait()
            if self._closed:
                return
            self._wanted.clear()
            try:
                async with self._database.connection() as conn:
                    await conn.execute(_NOTIFY)
                self.sent += 1
            except Exception as exc:  # a lost hint only delays followers until they poll
                log.warning("notify failed", extra={"error": str(exc)})
                await asyncio.sleep(0.5)
                continue
            # Appends that commit meanwhile share the next notification.
            await asyncio.sleep(MIN_NOTIFY_INTERVAL)

    async def close(self) -> None:
        """Stop the background task (after the notification in flight, if any)."""
        self._closed = True
        self._wanted.set()
        await _stop(self._task)


class Listener:
    """One LISTEN connection per process; wakes every waiting follower on a notification."""

    def __init__(self, conninfo: str | None) -> None:
        # None: no direct connection to LISTEN on (behind a transaction pooler, where LISTEN
        # would end with the transaction that ran it): followers rely on polling alone.
        self._conninfo = conninfo
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: Increases with every notification (and every reconnect, which may have missed some).
        self.generation = 0
        #: True while the LISTEN connection is up.
        self.connected = False

    def _ensure_running(self) -> None:
        if self._conninfo is None:
            return
        if not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ilji-listener")

    def _bump(self) -> None:
        self.generation += 1
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def _run(self) -> None:
        backoff = Backoff()
        assert self._conninfo is not None
        while not self._closed:
            try:
                async with connect(self._conninfo, application_name="ilji-listener") as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connected = True
                    backoff.reset()
                    self._bump()  # anything may have happened while we were not listening
                    async for _ in conn.notifies():
                        self._bump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listener disconnected", extra={"error": str(exc)})
            finally:
                self.connected = False
            if self._closed:
                return
            await asyncio.sleep(backoff.next())

    async def wait(self, seen_generation: int, within: float) -> bool:
        """Wait for a notification newer than `seen_generation`, at most `within` s; True if woken."""
        self._ensure_running()
        if self.generation != seen_generation:
            return True
        wake = self._wake
        try:
            await asyncio.wait_for(wake.wait(), within)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop listening and wake every waiter."""
        self._closed = True
        if self._task and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 2.0)
        self._bump()


async def follow_pages(
    read_page: Callable[[int], Awaitable[list[RecordedEvent]]],
    after: int,
    batch_size: int,
    listener: Listener,
    *,
    poll_interval: float = 1.0,
) -> AsyncIterator[RecordedEvent]:
    """Yield events from `read_page(cursor)` forever, waiting between pages when caught up."""
    cursor = after
    schedule = WakeSchedule(poll_interval)
    unavailable = Backoff()
    while True:
        # Read the generation before the page, so a notification during the read is not lost.
        generation = listener.generation
        try:
            page = await read_page(cursor)
        except StoreUnavailable as exc:
            log.warning("follow: database unavailable, retrying", extra={"error": str(exc)})
            await asyncio.sleep(unavailable.next())
            continue
        unavailable.reset()
        for event in page:
            cursor = event.position
            yield event
        if len(page) >= batch_size:
            continue
        if page:
            schedule.found()
        # Woken but nothing new visible (an older transaction may still be open): soon again.
        if await listener.wait(generation, schedule.next_wait()):
            schedule.woken()
