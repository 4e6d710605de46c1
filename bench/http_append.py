"""HTTP append throughput of `ilji serve`, next to the library's own append rate in the same run.

One run starts a throwaway embedded PostgreSQL (or uses `--url`) and measures, in alternating
rounds, on two fresh databases of that server:

* the library: `PostgresEventStore.append`, one event per call, `--clients` concurrent writers
  (one stream each) on one asyncio loop;
* HTTP: `ilji serve` started here as a real process on a loopback port, and the same number
  of concurrent keep-alive clients, spread over `--client-processes` processes, each POSTing
  one event per request to its own stream. The default client is a minimal HTTP/1.1 one
  (`RawConnection`): httpx.AsyncClient (`--client httpx`) needs more CPU per request than the
  server, so on a 2-core machine it would measure httpx rather than Ilji.

It prints events/s and latency for both in each round, each round's ratio HTTP / library and
their median. This is a load script, not a test: the result depends on the machine, and the
client shares its CPUs.

    python bench/http_append.py
    python bench/http_append.py --seconds 10 --clients 32 --workers 2 --client-processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from _common import (
    AsyncCall,
    BenchServer,
    Sample,
    Stats,
    fmt_ms,
    fmt_rate,
    machine_info,
    measure_async,
)
from ilji import NewEvent, PostgresEventStore
from ilji.store.migrate import migrate

LIB_DB = "ilji_bench_lib"
HTTP_DB = "ilji_bench_http"
PAYLOAD = {"sku": "SKU-20931", "qty": 3, "note": "gift wrap, leave at door"}
EVENT_TYPE = "ItemAdded"


# -- the library ---------------------------------------------------------------------------


async def library_rate(url: str, clients: int, warmup: float, seconds: float) -> Stats:
    """Appends/s of PostgresEventStore.append with `clients` concurrent writers."""
    store = await PostgresEventStore.open(url, max_size=max(clients, 1))
    try:

        def writer() -> AsyncCall:
            stream = f"lib-{uuid.uuid4().hex[:12]}"

            async def call() -> int:
                await store.append(stream, [NewEvent(EVENT_TYPE, PAYLOAD)])
                return 1

            return call

        sample = await measure_async([writer() for _ in range(clients)], warmup, seconds)
    finally:
        await store.close()
    return Stats.of(sample, seconds)


# -- HTTP ----------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int, workers: int, pool_size: int) -> subprocess.Popen[bytes]:
    """`ilji serve` on 127.0.0.1:`port`; returns once /healthz answers."""
    env = {
        **os.environ,
        "ILJI_ACCESS_LOG": "false",
        "ILJI_LOG_LEVEL": "WARNING",
        "ILJI_POOL_MAX_SIZE": str(pool_size),
    }
    command = [sys.executable, "-m", "ilji.cli", "serve", "--database-url", url, "--port", str(port)]
    proc = subprocess.Popen([*command, "--workers", str(workers)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ilji serve exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("ilji serve did not start within 60 s")


async def _http_clients(base_url: str, clients: int, warmup: float, seconds: float) -> Sample:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        def writer() -> AsyncCall:
            path = f"/v1/streams/http-{uuid.uuid4().hex[:12]}"
            body = {"events": [{"type": EVENT_TYPE, "data": PAYLOAD}]}

            async def call() -> int:
                response = await client.post(path, json=body)
                if response.status_code != 201:
                    raise RuntimeError(f"append failed: {response.status_code} {response.text}")
                return 1

            return call

        return await measure_async([writer() for _ in range(clients)], warmup, seconds)


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client: one request at a time on one connection.

    httpx spends far more CPU per request than the server does (its pure-Python HTTP parser
    and connection pool), so on a small machine it, not the server, sets the pace. This client
    only writes a prepared request and reads the status line, headers and a Content-Length
    body, which is all an append answer needs.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        """Connect to host:port."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one prepared request; return the status and body of the answer."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def _raw_clients(base_url: str, clients: int, warmup: float, seconds: float) -> Sample:
    url = httpx.URL(base_url)
    body = orjson.dumps({"events": [{"type": EVENT_TYPE, "data": PAYLOAD}]})
    connections = [await RawConnection.open(url.host, url.port or 80) for _ in range(clients)]
    try:

        def writer(connection: RawConnection) -> AsyncCall:
            raw = (
                f"POST /v1/streams/raw-{uuid.uuid4().hex[:12]} HTTP/1.1\r\nHost: {url.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body

            async def call() -> int:
                status, answer = await connection.request(raw)
                if status != 201:
                    raise RuntimeError(f"append failed: {status} {answer!r}")
                return 1

            return call

        return await measure_async([writer(c) for c in connections], warmup, seconds)
    finally:
        for connection in connections:
            await connection.close()


def _measure(client: str, base_url: str, clients: int, warmup: float, seconds: float) -> Sample:
    run = _raw_clients if client == "raw" else _http_clients
    return asyncio.run(run(base_url, clients, warmup, seconds))


def _client_process(
    client: str, base_url: str, clients: int, start_at: float, warmup: float, seconds: float, out: Any
) -> None:
    # Every client process starts at the same wall-clock moment, so their windows coincide.
    time.sleep(max(0.0, start_at - time.time()))
    sample = _measure(client, base_url, clients, warmup, seconds)
    out.put((sample.calls, sample.events, sample.latencies))


def http_rate(
    client: str, base_url: str, clients: int, processes: int, warmup: float, seconds: float
) -> Stats:
    """Appends/s over HTTP with `clients` concurrent clients spread over `processes` processes."""
    if processes <= 1:
        return Stats.of(_measure(client, base_url, clients, warmup, seconds), seconds)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    share = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    start_at = time.time() + 2.0  # time for the spawned interpreters to import httpx
    workers = [
        context.Process(target=_client_process, args=(client, base_url, n, start_at, warmup, seconds, out))
        for n in share
        if n > 0
    ]
    for w in workers:
        w.start()
    samples = []
    for _ in workers:
        calls, events, latencies = out.get(timeout=warmup + seconds + 120)
        samples.append(Sample(calls, events, latencies))
    for w in workers:
        w.join()
    return Stats.of(Sample.merge(samples), seconds)


# -- the run -------------------------------------------------------------------------------


def row(name: str, stats: Stats) -> str:
    """One line of the report."""
    return (
        f"{name:<34} {fmt_rate(stats.events_per_s):>10} events/s   "
        f"p50 {fmt_ms(stats.p50_ms):>7} ms   p99 {fmt_ms(stats.p99_ms):>7} ms   ({stats.calls:,} calls)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up time per case, not measured")
    parser.add_argument("--clients", type=int, default=16, help="concurrent writers in both cases")
    parser.add_argument("--workers", type=int, default=1, help="`ilji serve --workers`")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="HTTP client: a minimal keep-alive client, or httpx.AsyncClient (slower than the server)",
    )
    parser.add_argument("--client-processes", type=int, default=1, help="processes running HTTP clients")
    parser.add_argument("--pool-size", type=int, default=10, help="database pool size per server worker")
    parser.add_argument("--rounds", type=int, default=3, help="library/HTTP pairs to measure")
    parser.add_argument("--url", help="an existing PostgreSQL server (admin URL) instead of a throwaway one")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run both cases and print the ratio."""
    args = parse_args(argv)
    info = machine_info()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(
        f"{args.clients} concurrent writers, 1 event per call, {args.seconds:g} s measured after "
        f"{args.warmup:g} s warm-up; server workers: {args.workers}; client processes: "
        f"{args.client_processes}"
    )
    ratios: list[float] = []
    with BenchServer.open(args.url) as pg:
        print(f"postgres: {pg.description}")
        lib_url = pg.recreate_database(LIB_DB)
        http_url = pg.recreate_database(HTTP_DB)
        asyncio.run(migrate(lib_url))
        asyncio.run(migrate(http_url))
        port = free_port()
        server = start_server(http_url, port, args.workers, args.pool_size)
        try:
            # Library and HTTP alternate, round after round: a change in the machine's load
            # (other processes, PostgreSQL's checkpoints) then moves both sides of a ratio.
            for number in range(1, args.rounds + 1):
                print(f"round {number}/{args.rounds}")
                library = asyncio.run(library_rate(lib_url, args.clients, args.warmup, args.seconds))
                print(row("  library  PostgresEventStore.append", library))
                pg.checkpoint()
                http = http_rate(
                    args.client,
                    f"http://127.0.0.1:{port}",
                    args.clients,
                    args.client_processes,
                    args.warmup,
                    args.seconds,
                )
                print(row(f"  HTTP     POST /v1/streams ({args.client})", http))
                pg.checkpoint()
                ratios.append(http.events_per_s / library.events_per_s)
                print(f"  ratio HTTP / library: {ratios[-1]:.0%}")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            pg.drop_database(LIB_DB)
            pg.drop_database(HTTP_DB)
    print(f"ratio HTTP / library, median of {len(ratios)} rounds: {statistics.median(ratios):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
