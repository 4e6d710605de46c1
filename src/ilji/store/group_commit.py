"""Group commit: concurrent appends of one process share one statement and one transaction.

A single-event append costs a round trip and a durable commit (a WAL flush), and on a small
machine the commit, not the insert, sets the pace. When many callers append at once,
`GroupCommitter` sends their appends ("parts") together: one `append_group.sql` statement, one
round trip, one commit, one WAL flush for all of them.

There is no timer. An append that arrives while nothing is under way is sent at once, in its
caller's task, with the same single-append statement as without grouping: a lone caller waits
no longer than before. Appends that arrive while something is in flight queue; a group takes
the queue one event-loop turn after it is launched (so callers woken together go together), and
when a group finishes, the next takes what queued meanwhile. So groups grow exactly as large as
the load makes them.

Every caller keeps its own contract (docs/en/architecture.md, "Group commit"):

- Input is checked and encoded before a part joins a group, so bad input fails its own
  caller only.
- The statement writes only the parts whose expectation holds and whose ids are not stored
  yet, and says why each other part was left out (`Rejected`); the caller then decides
  between `WrongExpectedVersion`, `DuplicateEventId` and an idempotent result, without
  writing anything, as it would alone.
- A unique violation (another process appended to one of the streams, or stored one of the
  ids, while the statement ran) fails the whole statement: the group is sent again once (the
  new statement sees the other process's events), then its parts go alone, one after another
  per stream. Any other database error that is not an outage also sends the parts alone, so
  the error reaches the part that caused it.
- Appends to one stream keep call order: a stream appears in one group only more than once if
  every later part expects ANY (they get consecutive versions in call order); otherwise the
  later part waits for the next group, and so do all appends to that stream after it. Two
  groups in flight never share a stream.
- A caller cancelled while its part waits is taken out of the queue, and nothing of it is
  written. A caller cancelled while its group is in flight loses only the answer: its events
  may be committed. Resending the same events (same ids) tells which.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from psycopg import errors as pg_errors

from ilji.domain.errors import IljiError, StoreUnavailable
from ilji.domain.events import ANY, EXISTS, NO_STREAM, POSITION_SHIFT, AppendResult, ExpectedVersion
from ilji.store import sql
from ilji.store.database import Connection, Database

_APPEND_GROUP = sql.load("append_group")

#: Positions per transaction: a group's events plus one unused index between its parts.
POSITION_BUDGET = 1 << POSITION_SHIFT
#: The most events a group takes (a larger part still goes, alone). Grouping pays off for
#: small appends, whose cost is the round trip and the commit; a big batch has spread those
#: already, and several go faster side by side on separate connections (PostgreSQL works on
#: them in parallel) than one after the other in one statement.
GROUP_EVENTS = 256
#: A part of at least this many events skips the queue when nothing of its stream is queued or
#: in flight: it has spread its round trip and commit over its events already.
ALONE_EVENTS = 64
#: Groups in flight at once, each on its own pool connection. The queue is shared out among
#: the free ones (64 waiting appends and 2 free: 2 groups of 32), so one group's statement
#: runs while the other's commit waits for its WAL flush. More do not help: each group's
#: commit is a flush of its own, and flushes run one after another (wait event
#: LWLock:WALWrite). Measured on a two-core machine, 16/64/256 callers: 2 in flight gave
#: 12.6k/24.9k/33.2k appends/s, 4 gave 5.5k/21.4k/29.8k, 1 gave 13.2k/21.1k/27.3k.
MAX_IN_FLIGHT = 2

#: Upper bounds of the group size histogram (appends per group).
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
#: Upper bounds of the wait histogram (seconds an append queued before its group was sent).
WAIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def expected_code(expected: ExpectedVersion) -> int:
    """How the append statements receive an expected version: -1 any, -2 exists, else n."""
    if expected is ANY:
        return -1
    if expected is EXISTS:
        return -2
    if expected is NO_STREAM:
        return 0
    assert isinstance(expected, int)
    return expected


@dataclass(slots=True)
class Part:
    """One caller's append, checked and encoded: ready for a statement."""

    stream: str
    expected: ExpectedVersion
    ids: list[uuid.UUID]
    types: list[str]
    data: list[str]
    metadata: list[str]

    def result(self, first_version: int, first_position: int) -> AppendResult:
        """The `AppendResult` of this part written at `first_version` and `first_position`."""
        n = len(self.ids)
        return AppendResult(
            stream=self.stream,
            first_version=first_version,
            last_version=first_version + n - 1,
            first_position=first_position,
            last_position=first_position + n - 1,
        )


@dataclass(frozen=True, slots=True)
class Rejected:
    """A part the group statement left out: its expectation did not hold at `head` (the
    stream's version then), or some of its ids were stored already (`reused`)."""

    head: int
    reused: bool


Outcome = AppendResult | Rejected
"""What a group gives back for each part (an error is raised in the caller instead)."""


async def write_parts(conn: Connection, parts: Sequence[Part]) -> list[Outcome]:
    """Run `append_group.sql` for `parts` (at most `POSITION_BUDGET` events plus gaps).

    A stream may appear more than once only if its later parts expect ANY. Raises the
    driver's exception, for example `UniqueViolation` when another process wrote the same
    stream version or event id meanwhile: nothing is written then.
    """
    streams: list[str] = []
    expected: list[int] = []
    starts: list[int] = []
    sizes: list[int] = []
    event_parts: list[int] = []
    steps: list[int] = []
    ids: list[uuid.UUID] = []
    types: list[str] = []
    data: list[str] = []
    metadata: list[str] = []
    start = 0
    for number, part in enumerate(parts, 1):
        size = len(part.ids)
        streams.append(part.stream)
        expected.append(expected_code(part.expected))
        starts.append(start)
        sizes.append(size)
        event_parts.extend([number] * size)
        steps.extend(range(1, size + 1))
        ids.extend(part.ids)
        types.extend(part.types)
        data.extend(part.data)
        metadata.extend(part.metadata)
        start += size + 1  # one unused index: the next part stays a separate batch
    params = {
        "streams": streams,
        "expected": expected,
        "starts": starts,
        "sizes": sizes,
        "parts": event_parts,
        "steps": steps,
        "ids": ids,
        "types": types,
        "data": data,
        "metadata": metadata,
    }
    cur = await conn.execute(_APPEND_GROUP, params)
    rows = await cur.fetchall()
    outcomes: list[Outcome] = []
    for part, (ok, version, position, reused) in zip(parts, rows, strict=True):
        outcomes.append(part.result(version, position) if ok else Rejected(version, reused))
    return outcomes


class Distribution:
    """A cumulative histogram (Prometheus style) that the server's metrics read at scrape time."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it) pairs, ending with infinity."""
        pairs: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


@dataclass(slots=True, eq=False)
class _Waiting:
    part: Part
    future: asyncio.Future[Outcome]
    queued: float = field(default_factory=time.perf_counter)


Alone = Callable[[Part], Awaitable[Outcome]]
"""The store's single-append path: writes one part with its own statement and retries."""


class GroupCommitter:
    """Coalesces concurrent appends into group statements (see the module docstring).

    `alone` writes one part with its own statement (a group of one, and the fallback);
    `max_in_flight` groups may run at once, on as many pooled connections of `database`.
    """

    def __init__(
        self,
        database: Database,
        alone: Alone,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
        group_events: int = GROUP_EVENTS,
    ) -> None:
        self._database = database
        self._alone = alone
        #: Groups in flight at once (1: every append waits for the group in flight).
        self.max_in_flight = max_in_flight
        self._group_events = group_events
        self._queue: list[_Waiting] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._forming = False  # a flight was launched and has not taken its group yet
        self._straights = 0  # parts written on their own right now (`_straight`)
        self._busy_streams: set[str] = set()
        self._busy_ids: set[uuid.UUID] = set()
        self.sizes = Distribution(SIZE_BUCKETS)
        self.waits = Distribution(WAIT_BUCKETS)
        self.groups = 0
        self.statements = 0

    async def append(self, part: Part) -> Outcome:
        """Write `part` with the next group; its own result, or its own error."""
        if not (self._in_flight or self._queue or self._straights) and self._idle(part):
            # Nothing else is under way: a lone append goes at once, in its own task.
            self.groups += 1
            self.sizes.observe(1)
            self.waits.observe(0.0)
            return await self._straight(part)
        if len(part.ids) >= ALONE_EVENTS and self._idle(part):
            return await self._straight(part)
        waiting = _Waiting(part, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._launch()
        # A cancelled caller cancels its future: still queued, it is skipped when the next
        # group forms; already sent, its events may commit (see the module docstring).
        return await waiting.future

    def _idle(self, part: Part) -> bool:
        """Nothing of the part's stream (and none of its ids) is queued or in flight."""
        return (
            part.stream not in self._busy_streams
            and self._busy_ids.isdisjoint(part.ids)
            and all(w.part.stream != part.stream for w in self._queue)
        )

    async def _straight(self, part: Part) -> Outcome:
        """A lone or big part on its own statement right away; its stream counts as in flight
        meanwhile, so a later append to it waits (call order)."""
        self._busy_streams.add(part.stream)
        self._busy_ids.update(part.ids)
        self._straights += 1
        try:
            return await self._alone(part)
        finally:
            self._straights -= 1
            self._busy_streams.discard(part.stream)
            self._busy_ids.difference_update(part.ids)
            self._launch()

    async def close(self) -> None:
        """Wait for the queued and in-flight groups (each finished group sends the next)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _launch(self) -> None:
        # A flight takes its group when it starts to run, one event-loop turn after it was
        # launched: by then every append started in this turn (all the callers that a
        # finished group has just woken, say) has queued and goes with it. No timer.
        if self._forming or len(self._in_flight) >= self.max_in_flight or not self._queue:
            return
        self._forming = True
        task = asyncio.get_running_loop().create_task(self._flight(), name="ilji group commit")
        self._in_flight.add(task)

    async def _flight(self) -> None:
        self._forming = False
        group = self._take()
        try:
            if group:
                self._launch()  # what this group could not take (budget), if more may fly
                await self._send(group)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.discard(task)
        if group:
            self._launch()

    def _take(self) -> list[_Waiting]:
        """The next group from the queue, in call order, within the position budget.

        A part is left for a later group when its stream is in a group in flight, when its
        stream is in this group already and it does not expect ANY, when it shares an event id
        with the group, or when it does not fit the budget; every later part of its stream is
        then left too, so each stream's appends are written in call order.
        """
        group: list[_Waiting] = []
        kept: list[_Waiting] = []
        blocked = set(self._busy_streams)
        streams: set[str] = set()
        ids: set[uuid.UUID] = set()
        used = -1  # the first part needs no gap before it
        events = 0
        queued = sum(len(w.part.ids) for w in self._queue if not w.future.done())
        free = self.max_in_flight - len(self._in_flight) + 1  # this flight is counted in
        budget = min(self._group_events, max(1, -(-queued // max(free, 1))))
        for waiting in self._queue:
            if waiting.future.done():  # its caller was cancelled
                continue
            part = waiting.part
            size = len(part.ids) + 1
            if (
                part.stream in blocked
                or (part.stream in streams and part.expected is not ANY)
                or used + size > POSITION_BUDGET
                or (group and events + len(part.ids) > budget)
                or not ids.isdisjoint(part.ids)
                or not self._busy_ids.isdisjoint(part.ids)
            ):
                blocked.add(part.stream)
                kept.append(waiting)
                continue
            group.append(waiting)
            streams.add(part.stream)
            ids.update(part.ids)
            used += size
            events += len(part.ids)
        self._queue = kept
        self._busy_streams |= streams
        self._busy_ids |= ids
        return group

    async def _send(self, group: list[_Waiting]) -> None:
        sent = time.perf_counter()
        self.groups += 1
        self.sizes.observe(len(group))
        for waiting in group:
            self.waits.observe(sent - waiting.queued)
        cancelled: asyncio.CancelledError | None = None
        try:
            outcomes = await self._write(group)
        except asyncio.CancelledError as exc:  # the event loop is shutting down
            cancelled = exc
            outcomes = [StoreUnavailable("the store closed before the append finished") for _ in group]
        except Exception as exc:
            # An outage (an Ilji error already: the seam translated it), or a bug: every caller
            # of the group sees it, rather than waiting for ever.
            outcomes = [exc for _ in group]
        for waiting, outcome in zip(group, outcomes, strict=True):
            if waiting.future.done():
                continue
            if isinstance(outcome, BaseException):
                waiting.future.set_exception(outcome)
            else:
                waiting.future.set_result(outcome)
        for waiting in group:
            self._busy_streams.discard(waiting.part.stream)
            self._busy_ids.difference_update(waiting.part.ids)
        if cancelled is not None:
            raise cancelled

    async def _write(self, group: list[_Waiting]) -> list[Outcome | BaseException]:
        parts = [waiting.part for waiting in group]
        if len(parts) == 1:
            return await self._alone_in_order(parts)
        for attempt in range(2):
            self.statements += 1
            try:
                async with self._database.connection() as conn:
                    try:
                        return list(await write_parts(conn, parts))
                    except pg_errors.UniqueViolation:
                        if attempt == 0:
                            continue  # another process wrote one of our streams or ids: look again
            except StoreUnavailable:
                raise  # an outage: every caller of the group sees it
            except IljiError:
                pass  # any other error goes alone, to reach the part that caused it
            break
        return await self._alone_in_order(parts)

    async def _alone_in_order(self, parts: list[Part]) -> list[Outcome | BaseException]:
        """Each part with its own statement: streams side by side, each stream in call order."""
        by_stream: dict[str, list[int]] = {}
        for index, part in enumerate(parts):
            by_stream.setdefault(part.stream, []).append(index)
        outcomes: list[Outcome | BaseException] = [StoreUnavailable("not written")] * len(parts)

        async def stream_parts(indexes: list[int]) -> None:
            for index in indexes:
                try:
                    outcomes[index] = await self._alone(parts[index])
                except IljiError as exc:
                    outcomes[index] = exc

        if len(by_stream) == 1:
            await stream_parts(next(iter(by_stream.values())))
        else:
            await asyncio.gather(*(stream_parts(indexes) for indexes in by_stream.values()))
        return outcomes
