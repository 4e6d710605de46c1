"""Group commit: single-event appends, over the library and HTTP, next to PostgreSQL's own limits.

One run starts one throwaway PostgreSQL server (or uses `--url`) and measures, side by side,
with durable commits (fsync on, synchronous_commit on):

* the limits: raw psycopg single-row INSERTs (one autocommitted row per transaction) from 1, 4
  and 8 processes, and `pgbench` running the same INSERT with 1, 4 and 8 clients;
* Ilji `append`, one event per call: one process with 1, 16, 64 and 256 concurrent callers
  (distinct streams), group commit on and off; 1, 4 and 8 processes with one caller each;
  64 callers all appending to one stream with expected version `any`; 100-event batches
  from 4 callers;
* HTTP: `ilji serve` with one and two worker processes, loaded by `wrk` (a C load generator,
  so the client takes little CPU from the server) with 64 connections, one single-event POST
  per request to a new stream;
* reads: `read_all` pages of 500 against the bare gap-safe query on the same rows (no view,
  no objects) and the `eventsourcing` notification log holding as many events.

It prints a results table and the ratios the group commit work aims at (docs/en/performance.md).

    python bench/group_commit.py                    # everything, 5 s per case
    python bench/group_commit.py --seconds 2 --warmup 0.5 --cases 'ilji:c*,pgbench:*'
    python bench/group_commit.py --list

`pgbench` is looked up on PATH and in /usr/lib/postgresql/*/bin; `wrk` on PATH (Debian package
`wrk`, installed by scripts/install-system-deps). A case whose tool is missing is reported as
failed, the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import glob
import math
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

from _common import (
    AsyncCall,
    BenchServer,
    PgParams,
    Sample,
    Stats,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    machine_info,
    markdown_table,
    measure_async,
    measure_threads,
    positive,
)
from append import (
    EVENT_TYPE,
    PAYLOAD,
    RAW_ROW,
    RAW_TABLE,
    StreamCursor,
    _es_open,
    _es_seed,
    encode_payload,
    es_create_table,
    stream_name,
)
from http_append import free_port, start_server
from ilji import ANY, NewEvent, PostgresEventStore
from ilji.store.migrate import migrate

ILJI_DB = "ilji_bench_gc"
ES_DB = "es_bench_gc"
READ_PAGE = 500
STREAM_LENGTH = 100
HTTP_CONNECTIONS = 64
#: Events in Ilji's log before the first append case.
STARTING_EVENTS = 50_000

BARE_READ = (
    "SELECT id, stream, version, position, type, data::text, metadata::text, recorded_at"
    " FROM ilji.events WHERE position > %(after)s AND position < ilji.visible_bound()"
    " ORDER BY position LIMIT %(limit)s"
)


@dataclass(frozen=True, slots=True)
class Config:
    """What every case needs."""

    url: str
    es: PgParams
    warmup: float
    seconds: float
    read_events: int
    pgbench: str | None
    wrk: str | None


Run = Callable[[Config], "Sample | Stats"]


@dataclass(frozen=True, slots=True)
class Case:
    """One measurement."""

    name: str
    what: str
    run: Run


@dataclass(frozen=True, slots=True)
class Outcome:
    """A case's statistics, or why it failed."""

    case: Case
    stats: Stats | None
    error: str | None = None


# -- running in several processes ----------------------------------------------------------


def in_processes(processes: int, run: Callable[[Config], Sample]) -> Run:
    """`run` in `processes` forked processes at once (one writer each); their samples merged."""

    def runner(config: Config) -> Sample:
        context = multiprocessing.get_context("fork")
        queue = context.Queue()

        def child() -> None:
            try:
                queue.put(run(config))
            except BaseException as exc:  # reported by the parent
                queue.put(f"{type(exc).__name__}: {exc}")

        procs = [context.Process(target=child) for _ in range(processes)]
        for proc in procs:
            proc.start()
        results = [queue.get(timeout=config.warmup + config.seconds + 120) for _ in procs]
        for proc in procs:
            proc.join()
        errors = [r for r in results if isinstance(r, str)]
        if errors:
            raise RuntimeError(errors[0])
        return Sample.merge([r for r in results if isinstance(r, Sample)])

    return runner


# -- raw PostgreSQL and pgbench --------------------------------------------------------------


def raw_row(config: Config) -> Sample:
    """One connection inserting one row per autocommitted statement."""

    async def main() -> Sample:
        async with await psycopg.AsyncConnection.connect(config.url, autocommit=True) as conn:
            streams = StreamCursor(1, STREAM_LENGTH)

            async def call() -> int:
                stream_id, _ = streams.next(1)
                await conn.execute(RAW_ROW, (stream_name(stream_id), EVENT_TYPE, encode_payload()))
                return 1

            return await measure_async([call], config.warmup, config.seconds)

    return asyncio.run(main())


def find_pgbench() -> str | None:
    """pgbench on PATH, else the newest in the Debian PostgreSQL packages."""
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else None


def pgbench_case(clients: int) -> Run:
    """pgbench running the raw single-row INSERT with `clients` clients (and as many threads)."""

    def run(config: Config) -> Stats:
        if config.pgbench is None:
            raise RuntimeError("pgbench not found (PostgreSQL's client binaries)")
        payload = encode_payload().replace("'", "''")
        script = (
            "\\set n random(1, 1000000000)\n"
            "INSERT INTO raw_events (stream, type, data)"
            f" VALUES ('order-' || :n, '{EVENT_TYPE}', '{payload}');\n"
        )
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(script)
        try:
            duration = max(1, round(config.warmup + config.seconds))
            command = [config.pgbench, "-n", "-c", str(clients), "-j", str(clients), "-T", str(duration)]
            done = subprocess.run(
                [*command, "-f", f.name, config.url], capture_output=True, text=True, check=False
            )
        finally:
            os.unlink(f.name)
        tps = re.search(r"tps = ([\d.]+)", done.stdout)
        latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
        if done.returncode != 0 or tps is None:
            raise RuntimeError(f"pgbench failed: {done.stderr.strip() or done.stdout.strip()}")
        rate = float(tps.group(1))
        average = float(latency.group(1)) if latency else math.nan
        # pgbench reports the average latency only: shown as p50, p99 unknown.
        return Stats(round(rate * duration), round(rate * duration), float(duration), average, math.nan)

    return run


# -- Ilji ------------------------------------------------------------------------------------


def ilji_case(
    callers: int, group: bool, per_call: int = 1, one_stream: bool = False
) -> Callable[[Config], Sample]:
    """One process, `callers` concurrent appenders (each its own streams, or all one stream)."""

    def run(config: Config) -> Sample:
        return asyncio.run(_ilji(config, callers, group, per_call, one_stream))

    return run


async def _ilji(config: Config, callers: int, group: bool, per_call: int, one_stream: bool) -> Sample:
    # Without grouping every concurrent caller needs a connection; with it, one group is in
    # flight at a time, plus the NOTIFY task and the occasional fallback.
    size = min(callers + 1, 64)
    async with await PostgresEventStore.open(
        config.url, min_size=size, max_size=size, group_commit=group
    ) as store:
        shared = stream_name(uuid.uuid4())

        def caller() -> AsyncCall:
            streams = StreamCursor(per_call, STREAM_LENGTH)

            async def append() -> int:
                stream = shared if one_stream else stream_name(streams.next(per_call)[0])
                await store.append(stream, [NewEvent(EVENT_TYPE, PAYLOAD) for _ in range(per_call)], ANY)
                return per_call

            return append

        return await measure_async([caller() for _ in range(callers)], config.warmup, config.seconds)


# -- HTTP with wrk -----------------------------------------------------------------------------

WRK_SCRIPT = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = "wrk-" .. tid .. "-" .. os.time() .. "-"
  counter = 0
end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/v1/streams/" .. prefix .. counter,
                    {["Content-Type"] = "application/json"}, BODY)
end
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def http_case(workers: int) -> Run:
    """`ilji serve --workers N` loaded by wrk with 64 connections, one event per POST."""

    def run(config: Config) -> Stats:
        if config.wrk is None:
            raise RuntimeError("wrk not found (Debian package wrk: scripts/install-system-deps)")
        body = f'{{"events":[{{"type":"{EVENT_TYPE}","data":{encode_payload()}}}]}}'
        lua = WRK_SCRIPT.replace("BODY", "'" + body + "'")
        port = free_port()
        server = start_server(config.url, port, workers, pool_size=16)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(lua)
        try:
            base = [config.wrk, "-t", "2", "-c", str(HTTP_CONNECTIONS), "--latency", "-s", f.name]
            if config.warmup > 0:
                subprocess.run(
                    [*base, "-d", f"{max(1, round(config.warmup))}s", f"http://127.0.0.1:{port}"],
                    capture_output=True,
                    check=False,
                )
            seconds = max(1, round(config.seconds))
            done = subprocess.run(
                [*base, "-d", f"{seconds}s", f"http://127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            os.unlink(f.name)
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=20)
            if server.poll() is None:
                server.kill()
        out = done.stdout
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if done.returncode != 0 or rate is None:
            raise RuntimeError(f"wrk failed: {done.stderr.strip() or out.strip()}")
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if bad:
            raise RuntimeError(f"{bad.group(1)} requests were not answered with 201")
        latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE))
        p50, p99 = (
            _ms(*re.fullmatch(r"([\d.]+)(\w+)", latency[k]).groups())  # type: ignore[union-attr]
            if k in latency
            else math.nan
            for k in ("50", "99")
        )
        calls = round(float(rate.group(1)) * seconds)
        return Stats(calls, calls, float(seconds), p50, p99)

    return run


# -- reads -------------------------------------------------------------------------------------


async def _fill(url: str, events: int) -> None:
    """Append to Ilji's log, 100 events per stream, until it holds at least `events`."""
    async with await PostgresEventStore.open(url, max_size=4) as store:
        have = (await store.info()).events
        while have < events:
            batch = [NewEvent(EVENT_TYPE, PAYLOAD) for _ in range(100)]
            await store.append(stream_name(uuid.uuid4()), batch, ANY)
            have += 100


def seed_reads(config: Config) -> None:
    """Fill Ilji's log and eventsourcing's table up to `read_events` events each (100 per batch)."""
    asyncio.run(_fill(config.url, config.read_events))
    datastore, recorder = _es_open(config.es, 1)
    try:
        _es_seed(recorder, config.read_events)
    finally:
        datastore.close()
    with psycopg.connect(config.url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE ilji.events")
        # Read the table and its position index once, so the first read case does not fetch
        # from disk what the next ones then find in the operating system's cache (the append
        # cases leave millions of rows, more than shared_buffers holds).
        conn.execute("SELECT count(data) FROM ilji.events")
        conn.execute("SELECT count(*) FROM (SELECT position FROM ilji.events ORDER BY position) AS p")
    es = config.es
    with psycopg.connect(
        dbname=es.dbname, host=es.host, port=es.port, user=es.user, password=es.password, autocommit=True
    ) as conn:
        conn.execute("VACUUM ANALYZE")


def ilji_read(config: Config) -> Sample:
    """`read_all(after, 500)` pages from the start of the log, again from 0 at its end."""

    async def main() -> Sample:
        async with await PostgresEventStore.open(config.url, min_size=1, max_size=2) as store:
            after = 0

            async def page() -> int:
                nonlocal after
                events = await store.read_all(after, READ_PAGE)
                after = events[-1].position if len(events) == READ_PAGE else 0
                return len(events)

            return await measure_async([page], config.warmup, config.seconds)

    return asyncio.run(main())


def bare_read(config: Config) -> Sample:
    """The bare gap-safe query on ilji.events (no view, no lifecycle filter, tuples not objects)."""

    async def main() -> Sample:
        async with await psycopg.AsyncConnection.connect(
            config.url, autocommit=True, options="-c enable_bitmapscan=off -c timezone=UTC"
        ) as conn:
            after = 0

            async def page() -> int:
                nonlocal after
                cur = conn.cursor(binary=True)
                await cur.execute(BARE_READ, {"after": after, "limit": READ_PAGE})
                rows = await cur.fetchall()
                after = rows[-1][3] if len(rows) == READ_PAGE else 0
                return len(rows)

            return await measure_async([page], config.warmup, config.seconds)

    return asyncio.run(main())


def es_read(config: Config) -> Sample:
    """eventsourcing's `select_notifications` pages of 500."""
    datastore, recorder = _es_open(config.es, 1)
    try:
        start = 0

        def page() -> int:
            nonlocal start
            notifications = recorder.select_notifications(start, READ_PAGE, inclusive_of_start=False)
            start = notifications[-1].id if len(notifications) == READ_PAGE else 0
            return len(notifications)

        return measure_threads([page], config.warmup, config.seconds)
    finally:
        datastore.close()


# -- the cases ---------------------------------------------------------------------------------


def build_cases() -> list[Case]:
    """Every case, in the order they run."""
    cases = [
        Case(f"raw:row:p{n}", f"raw INSERT 1 row, {n} process(es)", in_processes(n, raw_row))
        for n in (1, 4, 8)
    ]
    cases += [
        Case(f"pgbench:c{n}", f"pgbench INSERT 1 row, {n} client(s)", pgbench_case(n)) for n in (1, 4, 8)
    ]
    for callers in (1, 16, 64, 256):
        for group in (True, False):
            mode = "on" if group else "off"
            cases.append(
                Case(
                    f"ilji:c{callers}:{mode}",
                    f"Ilji append 1 event, 1 process, {callers} caller(s), grouping {mode}",
                    ilji_case(callers, group),
                )
            )
    cases += [
        Case(
            f"ilji:p{n}",
            f"Ilji append 1 event, {n} process(es), 1 caller each",
            in_processes(n, ilji_case(1, True)),
        )
        for n in (1, 4, 8)
    ]
    for group in (True, False):
        mode = "on" if group else "off"
        cases.append(
            Case(
                f"ilji:onestream:c64:{mode}",
                f"Ilji append 1 event, 64 callers, one stream, any, grouping {mode}",
                ilji_case(64, group, one_stream=True),
            )
        )
        cases.append(
            Case(
                f"ilji:batch100:c4:{mode}",
                f"Ilji append 100 events, 4 callers, grouping {mode}",
                ilji_case(4, group, per_call=100),
            )
        )
    cases += [
        Case(
            f"http:wrk:s{w}",
            f"HTTP POST 1 event, wrk {HTTP_CONNECTIONS} connections, {w} server process(es)",
            http_case(w),
        )
        for w in (1, 2)
    ]
    cases += [
        Case("read:ilji", f"Ilji read_all, {READ_PAGE}/page", ilji_read),
        Case("read:bare", f"bare gap-safe query, {READ_PAGE}/page", bare_read),
        Case("read:es", f"eventsourcing select_notifications, {READ_PAGE}/page", es_read),
    ]
    return cases


#: (what, case, baseline, goal: the ratio aimed at, or None to just show it)
RATIOS: list[tuple[str, str, str, float | None]] = [
    ("64 callers, grouping on ÷ pgbench 8 clients", "ilji:c64:on", "pgbench:c8", 2.0),
    ("16 callers, grouping on ÷ pgbench 8 clients", "ilji:c16:on", "pgbench:c8", 1.0),
    ("1 caller, grouping on ÷ raw 1 process", "ilji:c1:on", "raw:row:p1", 0.8),
    ("1 caller: grouping on ÷ off", "ilji:c1:on", "ilji:c1:off", None),
    ("16 callers: grouping on ÷ off", "ilji:c16:on", "ilji:c16:off", None),
    ("64 callers: grouping on ÷ off", "ilji:c64:on", "ilji:c64:off", None),
    ("256 callers: grouping on ÷ off", "ilji:c256:on", "ilji:c256:off", None),
    ("one stream, 64 callers: grouping on ÷ off", "ilji:onestream:c64:on", "ilji:onestream:c64:off", None),
    ("100-event batches: grouping on ÷ off", "ilji:batch100:c4:on", "ilji:batch100:c4:off", 1.0),
    ("4 processes ÷ raw 4 processes", "ilji:p4", "raw:row:p4", None),
    ("HTTP 1 server process ÷ raw 4 processes", "http:wrk:s1", "raw:row:p4", 1.0),
    ("HTTP 2 server processes ÷ raw 4 processes", "http:wrk:s2", "raw:row:p4", 1.0),
    ("HTTP 1 server process ÷ library 64 callers", "http:wrk:s1", "ilji:c64:on", None),
    ("read_all ÷ bare gap-safe query", "read:ilji", "read:bare", 0.9),
    ("read_all ÷ eventsourcing notification log", "read:ilji", "read:es", 1.5),
]

NOTES = [
    "Durable commits: fsync and synchronous_commit as the server has them (see the header).",
    "Callers of one process are asyncio tasks; grouping on: concurrent appends share one statement"
    " and one commit (docs/en/architecture.md, Group commit).",
    "pgbench reports an average latency only, shown as p50.",
    "HTTP: wrk (2 threads) and the server share this machine's cores; latency is wrk's.",
    "Goals are for a quiet machine; the lead's final run fills docs/en/performance.md.",
]


# -- running and reporting -----------------------------------------------------------------------


def prepare(server: BenchServer, args: argparse.Namespace) -> Config:
    """Fresh databases, Ilji's schema, the raw table and eventsourcing's table."""
    url = server.recreate_database(ILJI_DB)
    server.recreate_database(ES_DB)
    asyncio.run(migrate(url))
    # A store in use, not an empty one: the first append case would otherwise be the one
    # that meets an empty table (its first pages, its first statistics).
    asyncio.run(_fill(url, STARTING_EVENTS))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        conn.execute("VACUUM ANALYZE ilji.events")
    es = server.params(ES_DB)
    es_create_table(es)
    return Config(
        url=url,
        es=es,
        warmup=args.warmup,
        seconds=args.seconds,
        read_events=args.read_events,
        pgbench=args.pgbench or find_pgbench(),
        wrk=args.wrk or shutil.which("wrk"),
    )


def run_cases(cases: Sequence[Case], config: Config, server: BenchServer, console: Console) -> list[Outcome]:
    """Run the cases one after another, a line for each."""
    outcomes: list[Outcome] = []
    seeded = False
    width = max(len(c.name) for c in cases)
    for i, case in enumerate(cases, 1):
        if case.name.startswith("read:") and not seeded:
            # After the append cases, so the VACUUM at its end also covers the rows they
            # wrote: otherwise the first read case would pay for setting the hint bits of a
            # million fresh rows, and the next one would read clean pages.
            with console.status(f"seeding {config.read_events:,} events for the read cases …"):
                seed_reads(config)
            seeded = True
        server.checkpoint()
        try:
            with console.status(f"[{i}/{len(cases)}] {case.what} …"):
                result = case.run(config)
        except KeyboardInterrupt:
            break
        except Exception as exc:
            outcomes.append(Outcome(case, None, f"{type(exc).__name__}: {exc}"))
            console.print(f"{case.name:<{width}}  [red]failed[/] {type(exc).__name__}: {exc}")
            continue
        stats = result if isinstance(result, Stats) else Stats.of(result, config.seconds)
        outcomes.append(Outcome(case, stats))
        console.print(
            f"{case.name:<{width}}  {fmt_rate(stats.events_per_s):>9}/s"
            f"  p50 {fmt_ms(stats.p50_ms):>7} ms  p99 {fmt_ms(stats.p99_ms):>7} ms"
        )
    return outcomes


RESULT_HEADERS = ["Case", "What", "Events/s", "Calls/s", "p50 ms", "p99 ms"]
RATIO_HEADERS = ["Comparison", "Events/s", "Baseline events/s", "Ratio", "Goal", "p50 ms", "Baseline p50 ms"]


def result_rows(outcomes: Sequence[Outcome]) -> list[list[str]]:
    """One row per case."""
    rows = []
    for o in outcomes:
        s = o.stats
        if s is None:
            rows.append([o.case.name, o.case.what, "failed", "–", "–", "–"])
        else:
            rows.append(
                [
                    o.case.name,
                    o.case.what,
                    fmt_rate(s.events_per_s),
                    fmt_rate(s.calls_per_s),
                    fmt_ms(s.p50_ms),
                    fmt_ms(s.p99_ms),
                ]
            )
    return rows


def ratio_rows(outcomes: Sequence[Outcome]) -> list[list[str]]:
    """One row per comparison whose two cases both ran."""
    by_name = {o.case.name: o.stats for o in outcomes if o.stats is not None}
    rows = []
    for what, mine, theirs, goal in RATIOS:
        a, b = by_name.get(mine), by_name.get(theirs)
        if a is None or b is None:
            continue
        met = ""
        if goal is not None:
            met = f"≥ {goal:g}× " + ("✓" if a.events_per_s >= goal * b.events_per_s else "✗")
        rows.append(
            [
                what,
                fmt_rate(a.events_per_s),
                fmt_rate(b.events_per_s),
                fmt_ratio(a.events_per_s, b.events_per_s),
                met,
                fmt_ms(a.p50_ms),
                fmt_ms(b.p50_ms),
            ]
        )
    return rows


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A rich table; numbers right-aligned."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for i, name in enumerate(headers):
        out.add_column(name, justify="left" if (i < 2 and title == "Results") or i == 0 else "right")
    for row in rows:
        out.add_row(*row)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Group commit benchmark: Ilji single-event appends vs raw PostgreSQL and pgbench.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seconds", type=positive, default=5.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up time per case, not measured")
    parser.add_argument(
        "--cases", metavar="PATTERNS", help="comma-separated globs of case names (see --list)"
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--url", help="an existing server to use instead of a throwaway embedded one")
    parser.add_argument(
        "--read-events", type=int, default=100_000, help="events in each log for the read cases"
    )
    parser.add_argument(
        "--pgbench", help="the pgbench binary (default: found on PATH or in /usr/lib/postgresql)"
    )
    parser.add_argument("--wrk", help="the wrk binary (default: found on PATH)")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the tables as Markdown")
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit status is 1 when a case failed."""
    args = parse_args(argv)
    cases = build_cases()
    if args.cases:
        wanted = [p.strip() for p in args.cases.split(",") if p.strip()]
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.name, p) for p in wanted)]
    console = Console() if sys.stdout.isatty() else Console(width=160)
    if args.list:
        for case in cases:
            console.print(f"{case.name:<24} {case.what}")
        return 0
    if not cases:
        console.print(f"[red]no case matches {args.cases!r}[/] (see --list)")
        return 2
    with BenchServer.open(args.url) as server:
        settings = server.settings()
        info = machine_info()
        info["PostgreSQL"] = f"{settings['server_version']} ({server.description})"
        info["Durability"] = f"fsync={settings['fsync']}, synchronous_commit={settings['synchronous_commit']}"
        info["Run"] = f"{args.seconds:g} s per case after {args.warmup:g} s warm-up"
        for key, value in info.items():
            console.print(f"[bold]{key}[/]: {value}")
        config = prepare(server, args)
        try:
            outcomes = run_cases(cases, config, server, console)
        finally:
            if args.url:
                for dbname in (ILJI_DB, ES_DB):
                    server.drop_database(dbname)
    results, ratios = result_rows(outcomes), ratio_rows(outcomes)
    console.print(table("Results", RESULT_HEADERS, results))
    if ratios:
        console.print(table("Ratios", RATIO_HEADERS, ratios))
    for note in NOTES:
        console.print(f"[dim]• {note}[/]")
    if args.markdown:
        parts = ["# Group commit benchmark", "", *(f"- **{k}**: {v}" for k, v in info.items()), ""]
        parts += [
            "## Results",
            "",
            markdown_table(RESULT_HEADERS, results, [False, False, True, True, True, True]),
        ]
        parts += ["", "## Ratios", "", markdown_table(RATIO_HEADERS, ratios, [False, *[True] * 6])]
        parts += ["", "## Notes", "", *(f"- {n}" for n in NOTES)]
        args.markdown.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
