"""Projection throughput and latency: catch-up events/s, and append-to-read-model latency live.

One run starts one throwaway PostgreSQL server (or uses `--url`) and measures:

* **catch-up**: `--events` events are in the log before a worker starts; the worker (in this
  process) projects them into a simple table (one row per event, `executemany` in batches)
  and we time it from start until its checkpoint reaches the head of the log;
* **live latency**: a worker in a separate process follows the log while this process
  appends single events at a steady `--rate` (appends/s) for `--seconds`. The projection
  sends `pg_notify` in its batch transaction, which PostgreSQL delivers at commit, so this
  process learns the moment each event is in the read model. Latency = that moment minus
  the moment the append was started (one clock: this process's).

Commits are durable (PostgreSQL defaults: fsync on, synchronous_commit on).

    python bench/projections.py
    python bench/projections.py --events 200000 --rate 1000 --seconds 10 --markdown results.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from _common import BenchServer, fmt_ms, fmt_rate, machine_info, markdown_table, percentile, positive
from ilji import NewEvent, PostgresEventStore, RecordedEvent
from ilji.projections import Context, Projection, Worker, wait_for_position
from ilji.projections.projection import Connection
from ilji.store.migrate import migrate

NOTIFY_CHANNEL = "ilji_bench_applied"


class EventRows(Projection):
    """One row per event in `bench_rows_v1`: the simplest useful read model."""

    name = "bench_rows"
    batch_size = 1000

    async def setup(self, conn: Connection, ctx: Context) -> None:
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (event_id uuid PRIMARY KEY, stream text NOT NULL,"
                " position bigint NOT NULL, type text NOT NULL)"
            ).format(sql.Identifier(ctx.table("bench_rows")))
        )

    async def apply(self, conn: Connection, events: Sequence[RecordedEvent], ctx: Context) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(
                sql.SQL("INSERT INTO {} (event_id, stream, position, type) VALUES (%s, %s, %s, %s)").format(
                    sql.Identifier(ctx.table("bench_rows"))
                ),
                [(e.id, e.stream, e.position, e.type) for e in events],
            )


class NotifyingRows(EventRows):
    """`EventRows` that also announces, at commit, the last position it applied."""

    name = "bench_live"

    async def apply(self, conn: Connection, events: Sequence[RecordedEvent], ctx: Context) -> None:
        await super().apply(conn, events, ctx)
        if events:
            await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(events[-1].position)))


# -- catch-up ------------------------------------------------------------------------------


async def seed(url: str, events: int, console: Console) -> int:
    """Append `events` events in batches of 100 (8 writers); the head position."""
    async with await PostgresEventStore.open(url, max_size=8) as store:
        started = time.perf_counter()
        head = 0
        written = 0

        async def writer(n: int) -> None:
            nonlocal head, written
            while written < events:
                written += 100
                result = await store.append(
                    f"bench-{n}-{uuid.uuid4().hex[:8]}", [NewEvent("Ticked", {"n": i}) for i in range(100)]
                )
                head = max(head, result.last_position)

        await asyncio.gather(*(writer(n) for n in range(8)))
        console.print(f"seeded {written:,} events in {time.perf_counter() - started:.1f} s")
        return head


async def catch_up(url: str, events: int, batch_size: int, console: Console) -> float:
    """Events/s of a worker projecting `events` events from position 0."""
    head = await seed(url, events, console)
    projection = type("Rows", (EventRows,), {"name": f"bench_rows_{batch_size}", "batch_size": batch_size})()
    async with await PostgresEventStore.open(url, max_size=8) as store:
        worker = Worker(store, [projection], worker_id="bench", lease_ttl=5.0)
        started = time.perf_counter()
        task = asyncio.create_task(worker.run())
        await wait_for_position(store, projection.name, head, timeout=600)
        elapsed = time.perf_counter() - started
        await worker.stop()
        await task
    return events / elapsed


# -- live latency --------------------------------------------------------------------------


def spawn_worker(url: str) -> subprocess.Popen[bytes]:
    """A worker process running `NotifyingRows` (this file is importable as `projections`)."""
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": str(here) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ilji.cli",
            "worker",
            "--database-url",
            url,
            "--projection",
            "projections:NotifyingRows",
            "--log-level",
            "WARNING",
        ],
        env=env,
    )


async def live(url: str, rate: float, seconds: float, warmup: float) -> dict[str, float]:
    """Append at `rate`/s for `seconds`; latency from append start to read-model commit."""
    proc = spawn_worker(url)
    pending: dict[int, float] = {}
    latencies: list[float] = []
    appended = 0
    try:
        async with (
            await PostgresEventStore.open(url, max_size=20) as store,
            await psycopg.AsyncConnection.connect(url, autocommit=True) as listen,
        ):
            await listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
            # The worker is up and following once a first event shows up in its read model.
            first = await store.append("live-warm", [NewEvent("Ticked", {})])
            await wait_for_position(store, "bench_live", first.last_position, timeout=60)
            measure_from = time.perf_counter() + warmup
            until = measure_from + seconds

            async def receive() -> None:
                async for note in listen.notifies():
                    now = time.perf_counter()
                    applied = int(note.payload)
                    for position in [p for p in pending if p <= applied]:
                        started = pending.pop(position)
                        if measure_from <= started < until:
                            latencies.append(now - started)

            receiver = asyncio.create_task(receive())

            async def one(i: int) -> None:
                nonlocal appended
                started = time.perf_counter()
                result = await store.append(f"live-{i % 500}", [NewEvent("Ticked", {"i": i})])
                pending[result.last_position] = started
                # An event already applied before its append returned (possible when the
                # worker is faster than this process) is matched by the next notification.
                appended += 1

            tasks: set[asyncio.Task[None]] = set()
            interval = 1.0 / rate
            next_at = time.perf_counter()
            i = 0
            while (now := time.perf_counter()) < until:
                if now < next_at:
                    await asyncio.sleep(next_at - now)
                task = asyncio.create_task(one(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
                next_at += interval
            await asyncio.gather(*tasks)
            await asyncio.sleep(1.0)
            receiver.cancel()
    finally:
        proc.terminate()
        proc.wait(10)
    ordered = sorted(latencies)
    return {
        "appends_per_s": appended / (seconds + warmup),
        "measured": len(ordered),
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] * 1000) if ordered else float("nan"),
    }


# -- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing server's admin URL (default: a throwaway embedded one)")
    parser.add_argument("--events", type=int, default=100_000, help="events to catch up on")
    parser.add_argument("--batch-sizes", default="500,1000,2000", help="catch-up batch sizes to try")
    parser.add_argument("--rate", type=positive, default=1000.0, help="appends per second in the live case")
    parser.add_argument("--seconds", type=positive, default=10.0, help="measured seconds of the live case")
    parser.add_argument("--warmup", type=positive, default=2.0, help="unmeasured seconds before")
    parser.add_argument("--markdown", type=Path, help="also write the results as Markdown here")
    args = parser.parse_args()
    console = Console()
    rows: list[list[str]] = []
    with BenchServer.open(args.url) as server:
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            url = server.recreate_database(f"ilji_bench_catchup_{batch_size}")
            asyncio.run(migrate(url))
            rate = asyncio.run(catch_up(url, args.events, batch_size, console))
            rows.append([f"catch-up, batches of {batch_size}", f"{fmt_rate(rate)} events/s", "–", "–"])
            console.print(rows[-1])
            server.drop_database(f"ilji_bench_catchup_{batch_size}")
            server.checkpoint()
        url = server.recreate_database("ilji_bench_live")
        asyncio.run(migrate(url))
        result = asyncio.run(live(url, args.rate, args.seconds, args.warmup))
        rows.append(
            [
                f"live, {fmt_rate(result['appends_per_s'])} appends/s ({int(result['measured'])} measured)",
                "–",
                fmt_ms(result["p50_ms"]),
                fmt_ms(result["p99_ms"]) + f" (max {fmt_ms(result['max_ms'])})",
            ]
        )
        server.drop_database("ilji_bench_live")
        description = server.description
    headers = ["case", "throughput", "p50 ms", "p99 ms"]
    table = Table(*headers, title="Ilji projections")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    info = {**machine_info(), "Server": description}
    for key, value in info.items():
        console.print(f"{key}: {value}")
    if args.markdown:
        lines = [f"- {k}: {v}" for k, v in info.items()]
        args.markdown.write_text(
            "\n".join(lines) + "\n\n" + markdown_table(headers, rows, [False, True, True, True]) + "\n"
        )


if __name__ == "__main__":
    main()
