"""Relay throughput and latency: events/s into JetStream, and append → JetStream ack, p50/p99.

One run starts a throwaway PostgreSQL server (or uses `--url`) and a `nats-server -js` on a
free loopback port with a temporary store (Debian's package, see scripts/install-system-deps),
and measures:

* **catch-up**: `--events` mapped events (over 200 streams) are in the log before the relay
  starts; we time it from start until its checkpoint reaches the head of the log (every
  event acknowledged by JetStream, file storage, the checkpoint committed);
* **live latency**: the relay follows the log while this process appends single events at a
  steady `--rate` (appends/s) for `--seconds`. The relay runs in this process, so the moment
  JetStream acknowledged each event is read on the same clock as the moment its append
  started; latency = acknowledgement minus append start.

    python bench/relay.py
    python bench/relay.py --events 50000 --rate 500 --seconds 10 --partitions 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.table import Table

from _common import BenchServer, fmt_ms, fmt_rate, machine_info, percentile
from ilji import NewEvent, PostgresEventStore, RecordedEvent
from ilji.projections import wait_for_position
from ilji.relay import IntegrationEvents, OutgoingMessage, Relay, RelayConfig
from ilji.store.migrate import migrate


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    """A `nats-server -js` on a free loopback port; yields its URL."""
    binary = shutil.which("nats-server")
    if binary is None:
        raise SystemExit("nats-server is not installed: run scripts/install-system-deps")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="ilji-bench-nats-") as store:
        proc = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("nats-server did not start")
                time.sleep(0.05)
            yield f"nats://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def integration(partitions: int, batch_size: int) -> IntegrationEvents:
    mapping = IntegrationEvents(
        "bench_relay", subject_prefix="bench", partitions=partitions, batch_size=batch_size
    )

    @mapping.map("SeatsReserved", to="SeatsReserved", version=1)
    def reserved(event: RecordedEvent) -> dict[str, Any]:
        return {"conference": event.stream, "seats": event.data["quantity"]}

    return mapping


def relay_for(url: str, nats_url: str, args: argparse.Namespace) -> Relay:
    return Relay(
        integration(args.partitions, args.batch_size),
        RelayConfig(
            database_url=url,
            nats_url=nats_url,
            jetstream_stream="BENCH",
            create_stream=True,
            lease_ttl=5.0,
            poll_interval=0.5,
            port=None,
        ),
    )


async def catch_up(url: str, nats_url: str, args: argparse.Namespace) -> float:
    """Events/s of a relay publishing a backlog of `args.events`."""
    async with await PostgresEventStore.open(url, max_size=8) as store:
        streams = [f"conference-{uuid.uuid4().hex[:10]}" for _ in range(200)]
        head, written = 0, 0
        while written < args.events:
            batch = [
                store.append(s, [NewEvent("SeatsReserved", {"quantity": k}) for k in range(10)])
                for s in streams[: max(1, min(20, (args.events - written) // 10))]
            ]
            for result in await asyncio.gather(*batch):
                head = max(head, result.last_position)
                written += result.last_version - result.first_version + 1
        relay = relay_for(url, nats_url, args)
        started = time.perf_counter()
        task = asyncio.create_task(relay.run())
        await wait_for_position(store, "bench_relay", head, timeout=600)
        seconds = time.perf_counter() - started
        await relay.stop()
        await task
    return written / seconds


async def live(url: str, nats_url: str, args: argparse.Namespace) -> dict[str, float]:
    """Append one event at a time at `args.rate`/s; latency from append start to JetStream ack."""
    started_at: dict[uuid.UUID, float] = {}
    acked_at: dict[uuid.UUID, float] = {}
    relay = relay_for(url, nats_url, args)
    publish = relay.broker.publish

    async def timed(js: Any, message: OutgoingMessage, stream: str) -> bool:
        duplicate = await publish(js, message, stream)
        acked_at.setdefault(message.event_id, time.perf_counter())
        return duplicate

    relay.broker.publish = timed  # type: ignore[method-assign]
    async with await PostgresEventStore.open(url, max_size=4) as store:
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(1.0)  # connected, leases taken
        interval = 1.0 / args.rate
        deadline = time.perf_counter() + args.seconds
        next_at = time.perf_counter()
        last = 0
        while time.perf_counter() < deadline:
            event = NewEvent("SeatsReserved", {"quantity": 1})
            started_at[event.id] = time.perf_counter()
            result = await store.append(f"conference-{uuid.uuid4().hex[:10]}", [event])
            last = max(last, result.last_position)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await wait_for_position(store, "bench_relay", last, timeout=60)
        await relay.stop()
        await task
    latencies = sorted(acked_at[i] - t for i, t in started_at.items() if i in acked_at)
    return {
        "appends": len(started_at),
        "appends_per_s": len(started_at) / args.seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing server's admin URL (default: a throwaway embedded one)")
    parser.add_argument("--events", type=int, default=20_000, help="backlog events for the catch-up case")
    parser.add_argument("--partitions", type=int, default=1, help="relay partitions (one process owns all)")
    parser.add_argument("--batch-size", type=int, default=500, help="events read per batch")
    parser.add_argument("--rate", type=float, default=200.0, help="appends per second in the live case")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of the live case")
    args = parser.parse_args()
    console = Console()
    rows: list[list[str]] = []
    with BenchServer.open(args.url) as server, nats_server() as nats_url:
        url = server.recreate_database("ilji_bench_relay")
        asyncio.run(migrate(url))
        rate = asyncio.run(catch_up(url, nats_url, args))
        rows.append([f"catch-up, {args.events:,} events", f"{fmt_rate(rate)} events/s", "–", "–"])
        console.print(rows[-1])
        result = asyncio.run(live(url, nats_url, args))
        rows.append(
            [
                f"live, {fmt_rate(result['appends_per_s'])} appends/s ({int(result['appends'])} events)",
                "–",
                fmt_ms(result["p50_ms"]),
                fmt_ms(result["p99_ms"]) + f" (max {fmt_ms(result['max_ms'])})",
            ]
        )
        server.drop_database("ilji_bench_relay")
        description = server.description
    table = Table("case", "throughput", "append → ack p50 ms", "p99 ms", title="Ilji relay → NATS JetStream")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    info = {
        **machine_info(),
        "Server": description,
        "Relay": f"{args.partitions} partition(s), batches of {args.batch_size}, one process",
    }
    for key, value in info.items():
        console.print(f"{key}: {value}")


if __name__ == "__main__":
    main()
