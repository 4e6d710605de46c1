"""Read-model lag under load: how long after an append returns a follower of the global log sees it.

W writers append one event at a time, as fast as they can, for `--seconds`; one in-process read
model follows the category with `store.follow()` (catch-up, then LISTEN/NOTIFY with polling as a
fallback) and notes when each event arrives. The lag of an event is the time from its append
returning to the follower receiving it (an event seen before its writer got the reply counts
as 0). Writers and follower share one process and one event loop, as a small service would.

    python bench/evaluation_lag.py
    python bench/evaluation_lag.py --writers 1 4 16 --seconds 5
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

from _common import fmt_ms, percentile
from evaluation_support import bar_chart, database, parser, report
from ilji import ANY, NewEvent, PostgresEventStore


@dataclass(frozen=True)
class Lag:
    writers: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    unseen: int


async def run(conninfo: str, writers: int, seconds: float) -> Lag:
    async with await PostgresEventStore.open(conninfo, min_size=writers + 2, max_size=writers + 2) as store:
        # Start from the end of the log as it is now (earlier cases left events behind).
        after = 0
        while page := await store.read_all(after=after, limit=10_000):
            after = page[-1].position
        category = f"lag{uuid.uuid4().hex[:8]}"
        returned: dict[uuid.UUID, float] = {}
        seen: dict[uuid.UUID, float] = {}
        expected: list[int] = []  # set once the writers have stopped
        drained = asyncio.Event()

        async def follower() -> None:
            async for event in store.follow(after=after, category=category):
                seen[event.id] = time.perf_counter()
                if expected and len(seen) >= expected[0]:
                    drained.set()

        async def writer(stream: str, until: float) -> None:
            while time.perf_counter() < until:
                event = NewEvent("Ticked", {"n": 1})
                await store.append(stream, [event], ANY)
                returned[event.id] = time.perf_counter()

        follow_task = asyncio.create_task(follower())
        began = time.perf_counter()
        until = began + seconds
        async with asyncio.TaskGroup() as group:
            for i in range(writers):
                group.create_task(writer(f"{category}-{i}", until))
        elapsed = time.perf_counter() - began
        # Give the follower up to 5 s to drain what is still in flight.
        expected.append(len(returned))
        if len(seen) >= expected[0]:
            drained.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained.wait(), timeout=5)
        follow_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow_task
    lags = sorted(max(0.0, seen[i] - t) for i, t in returned.items() if i in seen)
    return Lag(
        writers,
        len(returned),
        elapsed,
        percentile(lags, 0.5) * 1000,
        percentile(lags, 0.99) * 1000,
        (lags[-1] if lags else float("nan")) * 1000,
        len(returned) - len(lags),
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    results: list[Lag] = []
    with database(args.url, "ilji_eval_lag") as (_, conninfo):
        for writers in args.writers:
            results.append(asyncio.run(run(conninfo, writers, args.seconds)))
            print(results[-1])
        rows = [
            [
                str(r.writers),
                f"{r.events:,}",
                f"{r.events / r.seconds:,.0f}",
                fmt_ms(r.p50_ms),
                fmt_ms(r.p99_ms),
                fmt_ms(r.max_ms),
                str(r.unseen),
            ]
            for r in results
        ]
        report(
            "lag",
            "Read-model lag under load",
            ["writers", "events", "events/s", "lag p50 ms", "lag p99 ms", "lag max ms", "never seen"],
            rows,
            [True] * 7,
            conninfo,
            args,
            chart=lambda path: bar_chart(
                path,
                [f"{r.writers} writer{'s' if r.writers > 1 else ''}" for r in results],
                {"p50": [r.p50_ms for r in results], "p99": [r.p99_ms for r in results]},
                "milliseconds",
                "From append returning to the follower seeing the event",
            ),
            notes=[
                f"{args.seconds:g} s per case, writers appending one event per call without pause; "
                'one follower in the same process. "never seen" counts events the follower had not '
                "received 5 s after the writers stopped.",
            ],
        )


if __name__ == "__main__":
    main()
