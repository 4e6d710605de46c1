"""Seats under contention: a CRUD counter next to event-sourced reservations with Ilji.

A conference has CAPACITY seats. W concurrent workers (one connection each) reserve one seat
at a time until they see the conference sold out. Four ways to keep the count:

* crud-naive: SELECT the counter, check it, UPDATE it to the new value (read-modify-write in
  two autocommitted statements): the classic lost update.
* crud-atomic: one `UPDATE ... SET reserved = reserved + 1 WHERE reserved < capacity`: correct,
  writers queue on the row lock.
* crud-for-update: SELECT ... FOR UPDATE, check, UPDATE in one transaction: correct, lock waits.
* ilji: one stream per conference; each worker folds the events it has not seen yet, decides,
  and appends `SeatsReserved` with the version it decided on as the expected version; a
  `WrongExpectedVersion` sends it back to catch up and decide again (a conflict and a retry).

Reported per case: tickets issued (reservations the code reported as successful), the
counter's final value, tickets issued beyond capacity, conflicts, reservations/s and the
latency of one successful reservation (including its retries).

    python bench/evaluation_contention.py
    python bench/evaluation_contention.py --capacity 500 --workers 1 4 16
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from _common import fmt_ms, percentile
from evaluation_support import database, parser, report
from ilji import NO_STREAM, NewEvent, PostgresEventStore, WrongExpectedVersion

COUNTER_TABLE = (
    "CREATE TABLE seats (conference int PRIMARY KEY, capacity int NOT NULL, reserved int NOT NULL)"
)


@dataclass
class Tally:
    """What the workers of one case did."""

    issued: int = 0
    conflicts: int = 0
    seconds: float = 0.0  # from the first worker's start to the last worker's end
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    case: str
    workers: int
    issued: int
    final: int
    conflicts: int
    seconds: float
    p50_ms: float
    p99_ms: float


# -- CRUD ----------------------------------------------------------------------------------


async def crud_worker(conninfo: str, mode: str, capacity: int, tally: Tally) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        while True:
            began = time.perf_counter()
            if mode == "crud-naive":
                row = await (await conn.execute("SELECT reserved FROM seats WHERE conference = 1")).fetchone()
                assert row is not None
                if row[0] >= capacity:
                    return
                # The new value is computed from what this worker read, which may be stale by now.
                await conn.execute("UPDATE seats SET reserved = %s WHERE conference = 1", (row[0] + 1,))
            elif mode == "crud-atomic":
                cur = await conn.execute(
                    "UPDATE seats SET reserved = reserved + 1 WHERE conference = 1 AND reserved < capacity"
                )
                if cur.rowcount == 0:
                    return
            else:  # crud-for-update
                async with conn.transaction():
                    cur = await conn.execute("SELECT reserved FROM seats WHERE conference = 1 FOR UPDATE")
                    row = await cur.fetchone()
                    assert row is not None
                    if row[0] >= capacity:
                        return
                    await conn.execute("UPDATE seats SET reserved = %s WHERE conference = 1", (row[0] + 1,))
            tally.issued += 1
            tally.latencies.append(time.perf_counter() - began)


async def run_crud(conninfo: str, mode: str, capacity: int, workers: int) -> tuple[Tally, int]:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("DELETE FROM seats")
        await conn.execute("INSERT INTO seats VALUES (1, %s, 0)", (capacity,))
    tally = Tally()
    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(crud_worker(conninfo, mode, capacity, tally))
    tally.seconds = time.perf_counter() - began
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        row = await (await conn.execute("SELECT reserved FROM seats WHERE conference = 1")).fetchone()
    assert row is not None
    return tally, int(row[0])


# -- event sourced -------------------------------------------------------------------------


def evolve(reserved: int, event_type: str, data: dict[str, int]) -> int:
    """The state is the number of reserved seats."""
    return reserved + data["quantity"] if event_type == "SeatsReserved" else reserved


async def ilji_worker(store: PostgresEventStore, stream: str, capacity: int, tally: Tally) -> None:
    reserved, version = 0, 0
    while True:
        began = time.perf_counter()
        while True:
            # Catch up on the events this worker has not folded yet (its cached state).
            for event in await store.read_stream(stream, from_version=version + 1, limit=1000):
                reserved, version = evolve(reserved, event.type, event.data), event.version
            if reserved >= capacity:
                return
            try:
                result = await store.append(stream, [NewEvent("SeatsReserved", {"quantity": 1})], version)
            except WrongExpectedVersion:
                tally.conflicts += 1  # someone appended first: catch up and decide again
                continue
            reserved, version = reserved + 1, result.last_version
            break
        tally.issued += 1
        tally.latencies.append(time.perf_counter() - began)


async def run_ilji(conninfo: str, capacity: int, workers: int) -> tuple[Tally, int]:
    stream = f"conference-{uuid.uuid4().hex}"
    async with await PostgresEventStore.open(conninfo, min_size=workers + 1, max_size=workers + 1) as store:
        await store.append(stream, [NewEvent("ConferenceCreated", {"seats": capacity})], NO_STREAM)
        tally = Tally()
        began = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(ilji_worker(store, stream, capacity, tally))
        tally.seconds = time.perf_counter() - began
        final, version = 0, 0
        while page := await store.read_stream(stream, from_version=version + 1, limit=1000):
            for event in page:
                final, version = evolve(final, event.type, event.data), event.version
    return tally, final


# -- running -------------------------------------------------------------------------------


def measure(case: str, workers: int, go: Callable[[], Awaitable[tuple[Tally, int]]]) -> Result:
    tally, final = asyncio.run(go())
    ordered = sorted(tally.latencies)
    return Result(
        case,
        workers,
        tally.issued,
        final,
        tally.conflicts,
        tally.seconds,
        percentile(ordered, 0.5) * 1000,
        percentile(ordered, 0.99) * 1000,
    )


def chart(results: list[Result], capacity: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(r.case for r in results))
    workers = sorted({r.workers for r in results})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    width = 0.8 / len(cases)
    for i, case in enumerate(cases):
        xs = [x + (i - (len(cases) - 1) / 2) * width for x in range(len(workers))]
        by_w = {r.workers: r for r in results if r.case == case}
        left.bar(xs, [by_w[w].issued - capacity for w in workers], width=width, label=case)
        right.bar(xs, [by_w[w].issued / by_w[w].seconds for w in workers], width=width, label=case)
    for ax in (left, right):
        ax.set_xticks(range(len(workers)), [f"{w} worker{'s' if w > 1 else ''}" for w in workers])
        ax.grid(axis="y", alpha=0.3)
    left.set_title(f"tickets issued beyond {capacity} seats", fontsize=10)
    right.set_title("reservations per second", fontsize=10)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--capacity", type=int, default=300, help="seats of the conference")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16], help="concurrent workers")
    args = p.parse_args()
    results: list[Result] = []
    with database(args.url, "ilji_eval_contention") as (_, conninfo):
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(COUNTER_TABLE)
        for workers in args.workers:
            for mode in ("crud-naive", "crud-atomic", "crud-for-update"):
                results.append(
                    measure(mode, workers, lambda m=mode, w=workers: run_crud(conninfo, m, args.capacity, w))
                )
                print(results[-1])
            results.append(measure("ilji", workers, lambda w=workers: run_ilji(conninfo, args.capacity, w)))
            print(results[-1])
        rows = [
            [
                r.case,
                str(r.workers),
                f"{r.issued:,}",
                f"{r.final:,}",
                f"{r.issued - args.capacity:+,}",
                f"{r.conflicts:,}",
                f"{r.issued / r.seconds:,.0f}",
                fmt_ms(r.p50_ms),
                fmt_ms(r.p99_ms),
            ]
            for r in results
        ]
        report(
            "contention",
            f"{args.capacity} seats, one seat per reservation",
            [
                "case",
                "workers",
                "tickets issued",
                "final count",
                "beyond capacity",
                "conflicts",
                "reservations/s",
                "p50 ms",
                "p99 ms",
            ],
            rows,
            [False, True, True, True, True, True, True, True, True],
            conninfo,
            args,
            chart=lambda path: chart(results, args.capacity, path),
            notes=[
                f'Capacity: {args.capacity} seats. "beyond capacity" = tickets issued − capacity: '
                "above zero means seats were sold twice.",
            ],
        )


if __name__ == "__main__":
    main()
