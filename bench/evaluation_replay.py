"""Replay cost against stream length, and what a snapshot interval leaves to replay.

For each stream length N, one stream gets N `SeatsReserved` events (appended in batches of 100).
Then, for each length, the median over several runs of:

* full replay: `read_stream` page by page (1,000 events a page) and a fold over every event,
  which is what loading an entity without a snapshot costs;
* tail replay: reading and folding only the last `--interval - 1` events, which is the most a
  snapshot taken every `--interval` events leaves to replay (loading the snapshot row itself
  is not included: it is one primary-key read).

    python bench/evaluation_replay.py
    python bench/evaluation_replay.py --lengths 100 1000 10000 --interval 100 --repeat 7
"""

from __future__ import annotations

import asyncio
import uuid

from evaluation_support import bar_chart, database, median_seconds, parser, report
from ilji import NO_STREAM, NewEvent, PostgresEventStore

PAGE = 1000


async def fill(store: PostgresEventStore, stream: str, length: int) -> None:
    await store.append(stream, [NewEvent("ConferenceCreated", {"seats": 10**9})], NO_STREAM)
    version = 1
    while version < length:
        batch = min(100, length - version)
        events = [
            NewEvent("SeatsReserved", {"reservation_id": uuid.uuid4().hex, "quantity": 2})
            for _ in range(batch)
        ]
        result = await store.append(stream, events, version)
        version = result.last_version


async def replay(store: PostgresEventStore, stream: str, from_version: int = 1) -> int:
    """Read the stream from `from_version` and fold it into the number of reserved seats."""
    reserved, version = 0, from_version - 1
    while page := await store.read_stream(stream, from_version=version + 1, limit=PAGE):
        for event in page:
            if event.type == "SeatsReserved":
                reserved += event.data["quantity"]
            version = event.version
    return reserved


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 3000, 10000])
    p.add_argument("--interval", type=int, default=100, help="snapshot interval for the tail case")
    p.add_argument("--repeat", type=int, default=7, help="runs per measurement (the median is shown)")
    args = p.parse_args()
    with database(args.url, "ilji_eval_replay") as (_, conninfo):
        streams = {n: f"conference-{uuid.uuid4().hex}" for n in args.lengths}
        timings: dict[int, tuple[float, float, int]] = {}

        async def run() -> None:
            async with await PostgresEventStore.open(conninfo, min_size=1, max_size=2, notify=False) as store:
                for n, stream in streams.items():
                    await fill(store, stream, n)
                    assert await store.stream_version(stream) == n
                for n, stream in streams.items():
                    tail_from = max(1, n - args.interval + 2)
                    full = await median_seconds(lambda s=stream: replay(store, s), args.repeat)
                    tail = await median_seconds(
                        lambda s=stream, f=tail_from: replay(store, s, f), args.repeat
                    )
                    timings[n] = (full * 1000, tail * 1000, n - tail_from + 1)

        asyncio.run(run())
        rows, full_ms, tail_ms = [], [], []
        for n in args.lengths:
            f, t, left = timings[n]
            full_ms.append(f)
            tail_ms.append(t)
            rows.append(
                [f"{n:,}", f"{f:.2f}", f"{f * 1000 / n:.1f}", f"{left:,}", f"{t:.2f}", f"{f / t:.0f}×"]
            )
            print(rows[-1])
        report(
            "replay",
            "Replay cost vs stream length",
            [
                "events in stream",
                "full replay ms",
                "µs per event",
                f"events after the last snapshot (every {args.interval})",
                "tail replay ms",
                "full ÷ tail",
            ],
            rows,
            [True] * 6,
            conninfo,
            args,
            chart=lambda path: bar_chart(
                path,
                [f"{n:,}" for n in args.lengths],
                {"full replay": full_ms, f"snapshot every {args.interval} (worst case)": tail_ms},
                "milliseconds (log scale)",
                "Loading one entity: read_stream + fold",
                log=True,
            ),
            notes=[
                f"Median of {args.repeat} runs on an open store (warm connection pool and caches).",
            ],
        )


if __name__ == "__main__":
    main()
