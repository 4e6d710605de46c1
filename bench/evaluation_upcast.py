"""The cost of a schema change handled on read: an upcaster applied while replaying.

Schema 1 of `SeatsReserved` called the number of seats `seats`; schema 2 calls it `quantity`
(the metadata's `schema` says which). Stored events are never rewritten, so a reader upcasts
schema-1 events to schema 2 as it reads them. One stream of `--events` schema-1 events and
one of schema-2 events; the median over `--repeat` runs of reading each (pages of 1,000) and
folding it:

* schema 2, no upcaster: the baseline;
* schema 2 through the upcaster: the check costs something even when nothing changes;
* schema 1 through the upcaster: every event is converted.

The last column isolates the upcaster's own CPU time (the same calls on in-memory dicts).

    python bench/evaluation_upcast.py
    python bench/evaluation_upcast.py --events 10000 --repeat 9
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from evaluation_support import bar_chart, database, median_seconds, parser, report
from ilji import NO_STREAM, NewEvent, PostgresEventStore

Data = dict[str, Any]


def upcast(event_type: str, data: Data, metadata: Data) -> Data:
    """Bring an event's data to the current schema (2); schema 1 named `quantity` `seats`."""
    if event_type == "SeatsReserved" and metadata.get("schema", 1) == 1:
        data = {k: v for k, v in data.items() if k != "seats"} | {"quantity": data["seats"]}
    return data


def no_upcast(event_type: str, data: Data, metadata: Data) -> Data:
    return data


async def fill(store: PostgresEventStore, stream: str, events: int, schema: int) -> None:
    key = "seats" if schema == 1 else "quantity"
    version = 0
    for start in range(0, events, 500):
        batch = [
            NewEvent("SeatsReserved", {"reservation_id": f"r-{i}", key: 2}, {"schema": schema})
            for i in range(start, min(events, start + 500))
        ]
        result = await store.append(stream, batch, NO_STREAM if version == 0 else version)
        version = result.last_version


async def replay(store: PostgresEventStore, stream: str, convert: Callable[[str, Data, Data], Data]) -> int:
    reserved, version = 0, 0
    while page := await store.read_stream(stream, from_version=version + 1, limit=1000):
        for event in page:
            reserved += convert(event.type, event.data, event.metadata)["quantity"]
            version = event.version
    return reserved


def cpu_only(events: int, repeat: int) -> float:
    """Seconds the upcaster alone takes for `events` schema-1 events (median)."""
    datas = [({"reservation_id": f"r-{i}", "seats": 2}, {"schema": 1}) for i in range(events)]
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        for data, meta in datas:
            upcast("SeatsReserved", data, meta)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=9)
    args = p.parse_args()
    with database(args.url, "ilji_eval_upcast") as (_, conninfo):
        v1, v2 = f"conference-{uuid.uuid4().hex}", f"conference-{uuid.uuid4().hex}"
        results: dict[str, float] = {}

        async def run() -> None:
            async with await PostgresEventStore.open(conninfo, min_size=1, max_size=2, notify=False) as store:
                await fill(store, v1, args.events, 1)
                await fill(store, v2, args.events, 2)
                assert (
                    await replay(store, v1, upcast) == await replay(store, v2, no_upcast) == 2 * args.events
                )
                cases = {
                    "schema 2, no upcaster": (v2, no_upcast),
                    "schema 2 through the upcaster": (v2, upcast),
                    "schema 1 through the upcaster": (v1, upcast),
                }
                for name, (stream, convert) in cases.items():
                    results[name] = await median_seconds(
                        lambda s=stream, c=convert: replay(store, s, c), args.repeat
                    )

        asyncio.run(run())
        base = results["schema 2, no upcaster"]
        cpu = cpu_only(args.events, args.repeat)
        rows = []
        for name, seconds in results.items():
            rows.append(
                [
                    name,
                    f"{seconds * 1000:.1f}",
                    f"{seconds * 1e6 / args.events:.2f}",
                    f"{(seconds / base - 1) * 100:+.0f} %",
                ]
            )
        report(
            "upcast",
            f"Replaying {args.events:,} events with and without an upcaster",
            ["case", "replay ms", "µs per event", "vs baseline"],
            rows,
            [False, True, True, True],
            conninfo,
            args,
            chart=lambda path: bar_chart(
                path,
                ["schema 2\nno upcaster", "schema 2\nupcaster", "schema 1\nupcaster"],
                {"replay ms": [s * 1000 for s in results.values()]},
                "milliseconds",
                f"read_stream + fold of {args.events:,} events",
            ),
            notes=[
                f"Median of {args.repeat} runs. The upcaster alone, on in-memory dicts: "
                f"{cpu * 1000:.1f} ms for {args.events:,} events ({cpu * 1e6 / args.events:.2f} µs each). "
                "Differences smaller than the run-to-run noise of a shared machine are not meaningful.",
            ],
        )


if __name__ == "__main__":
    main()
