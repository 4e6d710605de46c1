"""Append and global-read throughput: Ilji next to PostgreSQL's raw limit and `eventsourcing`.

One run starts one throwaway PostgreSQL server (or uses `--url`) and measures, side by side:

* the physical limit: raw single-row INSERTs, one row per autocommitted transaction, with 1, 4
  and 8 concurrent connections, and raw 100-row INSERTs with one writer;
* Ilji's `PostgresEventStore.append` with 1, 10 and 100 events per call and 1 to 8 writers,
  and its global-log read rate (`read_all`, pages of 1000);
* the same append cases and global read on the `eventsourcing` library's PostgreSQL recorder,
  in a separate database on the same server.

Every case runs for a fixed time after a short warm-up and reports events/s and the per-call
latency (p50, p99). Commits are durable: the server keeps PostgreSQL's defaults (fsync on,
synchronous_commit on), so every call waits for its WAL flush.

    python bench/append.py                      # everything, 5 s per case
    python bench/append.py --seconds 3 --markdown results.md
    python bench/append.py --cases 'ilji:*,raw:row:*'
    python bench/append.py --url postgresql://user:pw@host/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import importlib.metadata
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from rich.console import Console
from rich.table import Table

import ilji
from _common import (
    AsyncCall,
    BenchServer,
    PgParams,
    Sample,
    Stats,
    SyncCall,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    machine_info,
    markdown_table,
    measure_async,
    measure_threads,
    positive,
)
from ilji import ANY, NewEvent, PostgresEventStore
from ilji.domain.events import new_event_id
from ilji.store.migrate import migrate

ILJI_DB = "ilji_bench"
ES_DB = "es_bench"

#: The event every case writes: a small JSON object, about 60 bytes once encoded.
PAYLOAD = {"sku": "SKU-20931", "qty": 3, "note": "gift wrap, leave at door"}
EVENT_TYPE = "ItemAdded"
ES_TOPIC = "bench.events:ItemAdded"
READ_PAGE = 1000

RAW = "PostgreSQL (raw)"
ILJI = "Ilji"
ES = "eventsourcing"

RAW_TABLE = (
    "CREATE TABLE raw_events (id bigserial primary key, stream text not null,"
    " type text not null, data jsonb not null)"
)
RAW_ROW = "INSERT INTO raw_events (stream, type, data) VALUES (%s, %s, %s::jsonb)"
# The same row shape, columns and indexes as ilji.events, written with a plain INSERT: the
# difference between this and raw_events is what Ilji's schema costs; the difference between
# this and Ilji's append is what Ilji's code (expected-version check, pool, validation) costs.
EVENT_ROW_TABLE = "CREATE TABLE raw_event_rows (LIKE ilji.events INCLUDING ALL)"
EVENT_ROW = (
    "INSERT INTO raw_event_rows (position, id, stream, version, type, data, metadata)"
    " VALUES (pg_current_xact_id()::text::bigint << 12, %s, %s, %s, %s, %s::jsonb, '{}')"
)
# %b: arrays as binary parameters, the fastest way psycopg sends them (text arrays need quoting).
RAW_BATCH = (
    "INSERT INTO raw_events (stream, type, data)"
    " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]::jsonb[])"
)


def encode_payload() -> str:
    """The payload as JSON text (encoded per call: every writer pays for its serialization)."""
    return orjson.dumps(PAYLOAD).decode()


# -- configuration and cases ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    """What every case needs: where to connect and how long to run."""

    ilji_url: str
    es: PgParams
    warmup: float
    seconds: float
    stream_length: int
    read_min_events: int


@dataclass(frozen=True, slots=True)
class Case:
    """One measurement: `run` returns the sample taken inside its measuring window."""

    name: str
    system: str
    operation: str
    writers: int
    per_call: int
    run: Callable[[Config], Sample]
    role: str = "writer"

    def describe(self) -> str:
        """`Ilji: append 1 event, 4 writers`."""
        plural = "" if self.writers == 1 else "s"
        return f"{self.system}: {self.operation}, {self.writers} {self.role}{plural}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A case's statistics, or why it failed."""

    case: Case
    stats: Stats | None
    error: str | None = None


class StreamCursor:
    """The streams of one writer: a new one after every `stream_length` events (at least one call)."""

    def __init__(self, per_call: int, stream_length: int) -> None:
        self.calls_per_stream = max(1, stream_length // per_call)
        self._calls = 0
        self._id = uuid.uuid4()
        self._version = 0

    def next(self, count: int) -> tuple[uuid.UUID, int]:
        """The stream for the next call of `count` events and the version of its first event."""
        if self._calls == self.calls_per_stream:
            self._calls, self._id, self._version = 0, uuid.uuid4(), 0
        self._calls += 1
        first = self._version + 1
        self._version += count
        return self._id, first


def stream_name(stream_id: uuid.UUID) -> str:
    """An Ilji (and raw) stream name in the `order` category."""
    return f"order-{stream_id.hex}"


# -- raw PostgreSQL ------------------------------------------------------------------------


def raw_case(writers: int, per_call: int) -> Callable[[Config], Sample]:
    """Raw INSERTs of `per_call` rows per autocommitted statement, one connection per writer.

    `per_call` 0 means one row into the copy of Ilji's table (`raw:eventrow`).
    """

    def run(config: Config) -> Sample:
        return asyncio.run(_raw(config, writers, per_call))

    return run


async def _raw(config: Config, writers: int, per_call: int) -> Sample:
    conns = [await psycopg.AsyncConnection.connect(config.ilji_url, autocommit=True) for _ in range(writers)]
    try:
        calls = [_raw_writer(conn, per_call, config.stream_length) for conn in conns]
        return await measure_async(calls, config.warmup, config.seconds)
    finally:
        for conn in conns:
            await conn.close()


def _raw_writer(conn: psycopg.AsyncConnection[tuple[object, ...]], per_call: int, length: int) -> AsyncCall:
    streams = StreamCursor(max(per_call, 1), length)

    async def one_row() -> int:
        stream_id, _ = streams.next(1)
        await conn.execute(RAW_ROW, (stream_name(stream_id), EVENT_TYPE, encode_payload()))
        return 1

    async def event_row() -> int:
        stream_id, version = streams.next(1)
        await conn.execute(
            EVENT_ROW, (new_event_id(), stream_name(stream_id), version, EVENT_TYPE, encode_payload())
        )
        return 1

    async def many_rows() -> int:
        stream_id, _ = streams.next(per_call)
        stream = stream_name(stream_id)
        data = [encode_payload() for _ in range(per_call)]
        await conn.execute(RAW_BATCH, ([stream] * per_call, [EVENT_TYPE] * per_call, data))
        return per_call

    if per_call == 0:
        return event_row
    return one_row if per_call == 1 else many_rows


# -- Ilji ----------------------------------------------------------------------------------


def ilji_append_case(writers: int, per_call: int) -> Callable[[Config], Sample]:
    """`store.append(stream, [per_call events], ANY)`, one asyncio task per writer."""

    def run(config: Config) -> Sample:
        return asyncio.run(_ilji_append(config, writers, per_call))

    return run


async def _ilji_append(config: Config, writers: int, per_call: int) -> Sample:
    # One connection per writer, plus one for the store's NOTIFY task, which borrows a pool
    # connection after appends: without it that task would make a writer wait.
    size = writers + 1
    async with await PostgresEventStore.open(config.ilji_url, min_size=size, max_size=size) as store:
        calls = [_ilji_writer(store, per_call, config.stream_length) for _ in range(writers)]
        return await measure_async(calls, config.warmup, config.seconds)


def _ilji_writer(store: PostgresEventStore, per_call: int, length: int) -> AsyncCall:
    streams = StreamCursor(per_call, length)

    async def append() -> int:
        stream_id, _ = streams.next(per_call)
        events = [NewEvent(EVENT_TYPE, PAYLOAD) for _ in range(per_call)]
        await store.append(stream_name(stream_id), events, ANY)
        return per_call

    return append


def ilji_two_streams_case(writers: int, together: bool) -> Callable[[Config], Sample]:
    """One event to each of two streams per call: one `append_streams` call (`together`, one
    transaction for both) or two `append` calls one after the other (two transactions)."""

    def run(config: Config) -> Sample:
        return asyncio.run(_ilji_two_streams(config, writers, together))

    return run


async def _ilji_two_streams(config: Config, writers: int, together: bool) -> Sample:
    size = writers + 1
    async with await PostgresEventStore.open(config.ilji_url, min_size=size, max_size=size) as store:
        calls = [_ilji_pair_writer(store, config.stream_length, together) for _ in range(writers)]
        return await measure_async(calls, config.warmup, config.seconds)


def _ilji_pair_writer(store: PostgresEventStore, length: int, together: bool) -> AsyncCall:
    sources, targets = StreamCursor(1, length), StreamCursor(1, length)

    async def append() -> int:
        (source, _), (target, _) = sources.next(1), targets.next(1)
        debit, credit = [NewEvent(EVENT_TYPE, PAYLOAD)], [NewEvent(EVENT_TYPE, PAYLOAD)]
        if together:
            await store.append_streams(
                [(stream_name(source), debit, ANY), (stream_name(target), credit, ANY)]
            )
        else:
            await store.append(stream_name(source), debit, ANY)
            await store.append(stream_name(target), credit, ANY)
        return 2

    return append


def ilji_read_case(config: Config) -> Sample:
    """Page through the global log with `read_all(after, limit=1000)`, from the start again at its end."""
    return asyncio.run(_ilji_read(config))


async def _ilji_read(config: Config) -> Sample:
    async with await PostgresEventStore.open(config.ilji_url, min_size=2, max_size=2) as store:
        await _ilji_seed(store, config.read_min_events)
        after = 0

        async def page() -> int:
            nonlocal after
            events = await store.read_all(after, limit=READ_PAGE)
            after = events[-1].position if len(events) == READ_PAGE else 0
            return len(events)

        return await measure_async([page], config.warmup, config.seconds)


async def _ilji_seed(store: PostgresEventStore, minimum: int) -> None:
    """Append 100-event batches until the log holds `minimum` events (when the append cases were skipped)."""
    have = (await store.info()).events
    while have < minimum:
        await store.append(
            stream_name(uuid.uuid4()), [NewEvent(EVENT_TYPE, PAYLOAD) for _ in range(100)], ANY
        )
        have += 100


# -- eventsourcing -------------------------------------------------------------------------


def _es_open(params: PgParams, pool_size: int) -> tuple[PostgresDatastore, PostgresApplicationRecorder]:
    """A datastore with a pool of `pool_size` connections and an application recorder on it."""
    datastore = PostgresDatastore(
        params.dbname,
        params.host,
        params.port,
        params.user,
        params.password,
        pool_size=pool_size,
    )
    # Open the pool and wait for all its connections before timing. (Its `pool_open_timeout`
    # option would do this on every call, and that races when threads share the pool.)
    datastore.pool.open(wait=True, timeout=10.0)
    return datastore, PostgresApplicationRecorder(datastore)


def es_create_table(params: PgParams) -> None:
    """Create the recorder's table, composite type and index."""
    datastore = PostgresDatastore(params.dbname, params.host, params.port, params.user, params.password)
    try:
        PostgresApplicationRecorder(datastore).create_table()
    finally:
        datastore.close()


def es_append_case(writers: int, per_call: int) -> Callable[[Config], Sample]:
    """`recorder.insert_events([per_call stored events])`, one thread per writer (it is a sync library)."""

    def run(config: Config) -> Sample:
        datastore, recorder = _es_open(config.es, writers)
        try:
            calls = [_es_writer(recorder, per_call, config.stream_length) for _ in range(writers)]
            return measure_threads(calls, config.warmup, config.seconds)
        finally:
            datastore.close()

    return run


def _es_writer(recorder: PostgresApplicationRecorder, per_call: int, length: int) -> SyncCall:
    streams = StreamCursor(per_call, length)

    def insert() -> int:
        originator_id, first = streams.next(per_call)
        recorder.insert_events(
            [
                StoredEvent(
                    originator_id=originator_id,
                    originator_version=first + i,
                    topic=ES_TOPIC,
                    state=orjson.dumps(PAYLOAD),
                )
                for i in range(per_call)
            ]
        )
        return per_call

    return insert


def es_read_case(config: Config) -> Sample:
    """Page through the notification log with `select_notifications`, from the start again at its end."""
    datastore, recorder = _es_open(config.es, 1)
    try:
        _es_seed(recorder, config.read_min_events)
        start = 0

        def page() -> int:
            nonlocal start
            notifications = recorder.select_notifications(start, READ_PAGE, inclusive_of_start=False)
            start = notifications[-1].id if len(notifications) == READ_PAGE else 0
            return len(notifications)

        return measure_threads([page], config.warmup, config.seconds)
    finally:
        datastore.close()


def _es_seed(recorder: PostgresApplicationRecorder, minimum: int) -> None:
    """Insert 100-event batches until the log holds `minimum` events (when the append cases were skipped)."""
    have = recorder.max_notification_id() or 0
    while have < minimum:
        originator_id = uuid.uuid4()
        recorder.insert_events(
            [StoredEvent(originator_id, v, ES_TOPIC, orjson.dumps(PAYLOAD)) for v in range(1, 101)]
        )
        have += 100


# -- the cases -----------------------------------------------------------------------------


def build_cases() -> list[Case]:
    """Every case, in the order they run."""
    cases = [Case(f"raw:row:w{w}", RAW, "INSERT 1 row", w, 1, raw_case(w, 1)) for w in (1, 4, 8)]
    cases.append(Case("raw:batch100:w1", RAW, "INSERT 100 rows (unnest)", 1, 100, raw_case(1, 100)))
    cases.extend(
        Case(f"raw:eventrow:w{w}", RAW, "INSERT 1 row into Ilji's table shape", w, 1, raw_case(w, 0))
        for w in (1, 4)
    )
    for per_call, writer_counts in ((1, (1, 4, 8)), (10, (1, 4)), (100, (1, 4))):
        noun = "event" if per_call == 1 else "events"
        cases.extend(
            Case(
                f"ilji:append{per_call}:w{w}",
                ILJI,
                f"append {per_call} {noun}",
                w,
                per_call,
                ilji_append_case(w, per_call),
            )
            for w in writer_counts
        )
    for w in (1, 4):
        cases.append(
            Case(
                f"ilji:twostream:w{w}",
                ILJI,
                "append_streams, 2 streams x 1 event",
                w,
                2,
                ilji_two_streams_case(w, True),
            )
        )
        cases.append(
            Case(
                f"ilji:twosingle:w{w}",
                ILJI,
                "2 x append, 1 event each",
                w,
                2,
                ilji_two_streams_case(w, False),
            )
        )
    cases.append(
        Case("ilji:read", ILJI, f"read_all, {READ_PAGE}/page", 1, READ_PAGE, ilji_read_case, "reader")
    )
    for per_call, writer_counts in ((1, (1, 4, 8)), (100, (1, 4))):
        noun = "event" if per_call == 1 else "events"
        cases.extend(
            Case(
                f"es:append{per_call}:w{w}",
                ES,
                f"insert_events {per_call} {noun}",
                w,
                per_call,
                es_append_case(w, per_call),
            )
            for w in writer_counts
        )
    cases.append(
        Case("es:read", ES, f"select_notifications, {READ_PAGE}/page", 1, READ_PAGE, es_read_case, "reader")
    )
    return cases


#: (comparison, what is compared, Ilji's case, the baseline's case)
RATIOS: list[tuple[str, str, str, str]] = [
    ("Ilji ÷ raw", "1 event per txn, 1 writer", "ilji:append1:w1", "raw:row:w1"),
    ("Ilji ÷ raw", "1 event per txn, 4 writers", "ilji:append1:w4", "raw:row:w4"),
    ("Ilji ÷ raw", "1 event per txn, 8 writers", "ilji:append1:w8", "raw:row:w8"),
    ("Ilji ÷ raw", "100 events per txn, 1 writer", "ilji:append100:w1", "raw:batch100:w1"),
    ("Ilji ÷ raw event row", "1 event per txn, 1 writer", "ilji:append1:w1", "raw:eventrow:w1"),
    ("Ilji ÷ raw event row", "1 event per txn, 4 writers", "ilji:append1:w4", "raw:eventrow:w4"),
    (
        "Two streams: one transaction ÷ two",
        "1 event each, 1 writer",
        "ilji:twostream:w1",
        "ilji:twosingle:w1",
    ),
    (
        "Two streams: one transaction ÷ two",
        "1 event each, 4 writers",
        "ilji:twostream:w4",
        "ilji:twosingle:w4",
    ),
    ("Ilji ÷ eventsourcing", "1 event per call, 1 writer", "ilji:append1:w1", "es:append1:w1"),
    ("Ilji ÷ eventsourcing", "1 event per call, 4 writers", "ilji:append1:w4", "es:append1:w4"),
    ("Ilji ÷ eventsourcing", "1 event per call, 8 writers", "ilji:append1:w8", "es:append1:w8"),
    ("Ilji ÷ eventsourcing", "100 events per call, 1 writer", "ilji:append100:w1", "es:append100:w1"),
    ("Ilji ÷ eventsourcing", "100 events per call, 4 writers", "ilji:append100:w4", "es:append100:w4"),
    ("Ilji ÷ eventsourcing", f"global read, {READ_PAGE} per page", "ilji:read", "es:read"),
]


def notes(stream_length: int) -> list[str]:
    """What a reader of the numbers should know."""
    return [
        "Every call is one transaction with a durable commit (fsync on, synchronous_commit on).",
        "Raw and Ilji writers are asyncio tasks with one connection each, in one process; "
        "eventsourcing is synchronous, so its writers are threads with one pooled connection each.",
        "Ilji's pool has writers + 1 connections: its NOTIFY task borrows one after appends.",
        "eventsourcing's recorder locks its table in EXCLUSIVE mode on every insert (as shipped, not tuned).",
        "Reads: Ilji builds RecordedEvent objects whose JSON data is parsed on first access (the"
        " benchmark does not touch it); eventsourcing's recorder returns the state as undecoded bytes.",
        "raw:eventrow is a plain INSERT into a copy of Ilji's events table (same columns and four"
        " indexes): it separates what the schema costs from what Ilji's append adds.",
        f"Streams: each writer starts a new stream every {stream_length} events"
        " (at least one call per stream).",
        "Client and server share the same machine and cores.",
    ]


def select_cases(cases: Sequence[Case], patterns: str | None) -> list[Case]:
    """The cases matching any comma-separated pattern (a glob, or else a substring of the name)."""
    if not patterns:
        return list(cases)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    return [c for c in cases if any(fnmatch.fnmatchcase(c.name, p) or p in c.name for p in wanted)]


# -- running -------------------------------------------------------------------------------


def prepare(server: BenchServer, args: argparse.Namespace, console: Console) -> Config:
    """Create both databases empty, apply Ilji's schema and create the other tables."""
    with console.status("creating databases …"):
        ilji_url = server.recreate_database(ILJI_DB)
        server.recreate_database(ES_DB)
        asyncio.run(migrate(ilji_url))
        with psycopg.connect(ilji_url, autocommit=True) as conn:
            conn.execute(RAW_TABLE)
            conn.execute(EVENT_ROW_TABLE)
        es = server.params(ES_DB)
        es_create_table(es)
    return Config(
        ilji_url=ilji_url,
        es=es,
        warmup=args.warmup,
        seconds=args.seconds,
        stream_length=args.stream_length,
        read_min_events=args.read_min_events,
    )


def run_cases(cases: Sequence[Case], config: Config, server: BenchServer, console: Console) -> list[Outcome]:
    """Run the cases one after another, printing a line for each; Ctrl-C stops after the current one."""
    outcomes: list[Outcome] = []
    width = max(len(c.name) for c in cases)
    for i, case in enumerate(cases, 1):
        counter = f"[dim][{i:>2}/{len(cases)}][/]"
        label = f"{case.name:<{width}}"
        server.checkpoint()
        began = time.perf_counter()
        try:
            with console.status(f"{counter} {label}  {case.describe()} …"):
                sample = case.run(config)
        except KeyboardInterrupt:
            console.print(f"{counter} {label}  [yellow]interrupted[/]")
            break
        except Exception as exc:
            outcomes.append(Outcome(case, None, f"{type(exc).__name__}: {exc}"))
            console.print(f"{counter} {label}  [red]failed[/] {type(exc).__name__}: {exc}")
            continue
        stats = Stats.of(sample, config.seconds)
        outcomes.append(Outcome(case, stats))
        took = time.perf_counter() - began
        console.print(
            f"{counter} {label}  {fmt_rate(stats.events_per_s):>9} events/s"
            f"  p50 {fmt_ms(stats.p50_ms):>7} ms  p99 {fmt_ms(stats.p99_ms):>7} ms"
            f"  [dim]({stats.calls:,} calls, {took:.1f} s)[/]"
        )
    return outcomes


# -- reporting -----------------------------------------------------------------------------


def header_info(server: BenchServer, settings: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    """What the run ran on and how, for the top of the report."""
    info = machine_info()
    info["PostgreSQL"] = settings["server_version"]
    info["Server"] = server.description
    info["Durability"] = (
        f"fsync={settings['fsync']}, synchronous_commit={settings['synchronous_commit']}, "
        f"wal_sync_method={settings['wal_sync_method']}, full_page_writes={settings['full_page_writes']}"
    )
    info["Memory settings"] = (
        f"shared_buffers={settings['shared_buffers']}, max_wal_size={settings['max_wal_size']}"
    )
    info["Libraries"] = (
        f"ilji {ilji.__version__}, psycopg {psycopg.__version__}, "
        f"eventsourcing {importlib.metadata.version('eventsourcing')}"
    )
    info["Run"] = (
        f"{args.seconds:g} s per case after {args.warmup:g} s warm-up; payload {len(encode_payload())} "
        f"bytes of JSON; a new stream every {args.stream_length} events"
    )
    info["Date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return info


RESULT_HEADERS = [
    "Case",
    "System",
    "Operation",
    "Writers",
    "Events/call",
    "Events/s",
    "Calls/s",
    "p50 ms",
    "p99 ms",
]
RESULT_RIGHT = [False, False, False, True, True, True, True, True, True]
RATIO_HEADERS = [
    "Comparison",
    "Case",
    "Ilji events/s",
    "Baseline events/s",
    "Ratio",
    "Ilji p50 ms",
    "Baseline p50 ms",
]
RATIO_RIGHT = [False, False, True, True, True, True, True]


def result_rows(outcomes: Sequence[Outcome]) -> list[list[str]]:
    """One row per case for the results table."""
    rows = []
    for o in outcomes:
        c, s = o.case, o.stats
        if s is None:
            rows.append(
                [c.name, c.system, c.operation, str(c.writers), str(c.per_call), "failed", "–", "–", "–"]
            )
            continue
        rows.append(
            [
                c.name,
                c.system,
                c.operation,
                str(c.writers),
                f"{c.per_call:,}",
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
    for comparison, what, mine, theirs in RATIOS:
        a, b = by_name.get(mine), by_name.get(theirs)
        if a is None or b is None:
            continue
        rows.append(
            [
                comparison,
                what,
                fmt_rate(a.events_per_s),
                fmt_rate(b.events_per_s),
                fmt_ratio(a.events_per_s, b.events_per_s),
                fmt_ms(a.p50_ms),
                fmt_ms(b.p50_ms),
            ]
        )
    return rows


def rich_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]
) -> Table:
    """A rich table, with a section break wherever the first cell's group changes."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for name, r in zip(headers, right, strict=True):
        # Numbers never wrap; text columns wrap when the terminal is narrow.
        table.add_column(name, justify="right" if r else "left", no_wrap=r)
    previous = None
    for row in rows:
        group = row[0].split(":", 1)[0]
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        table.add_row(*row)
    return table


def print_report(console: Console, outcomes: Sequence[Outcome], stream_length: int) -> None:
    """The results and ratios tables, then the notes."""
    console.print()
    console.print(rich_table("Results", RESULT_HEADERS, result_rows(outcomes), RESULT_RIGHT))
    ratios = ratio_rows(outcomes)
    if ratios:
        console.print()
        console.print(rich_table("Ratios (events/s)", RATIO_HEADERS, ratios, RATIO_RIGHT))
    console.print()
    for note in notes(stream_length):
        console.print(f"[dim]• {note}[/]")


def write_markdown(path: Path, info: dict[str, str], outcomes: Sequence[Outcome], stream_length: int) -> None:
    """The same report as Markdown."""
    parts = ["# Ilji append benchmark", ""]
    parts += [f"- **{key}**: {value}" for key, value in info.items()]
    parts += ["", "## Results", "", markdown_table(RESULT_HEADERS, result_rows(outcomes), RESULT_RIGHT)]
    ratios = ratio_rows(outcomes)
    if ratios:
        parts += ["", "## Ratios (events/s)", "", markdown_table(RATIO_HEADERS, ratios, RATIO_RIGHT)]
    parts += ["", "## Notes", ""]
    parts += [f"- {note}" for note in notes(stream_length)]
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def print_header(console: Console, info: dict[str, str], settings: dict[str, str]) -> None:
    """The machine and server, and a warning when commits are not durable."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in info.items():
        table.add_row(key, value)
    console.print("[bold]Ilji append benchmark[/]")
    console.print(table)
    if settings["fsync"] != "on" or settings["synchronous_commit"] != "on":
        console.print(
            "[bold red]warning:[/] commits are not durable on this server; numbers are not comparable"
        )
    console.print()


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Append and global-read throughput: Ilji vs raw PostgreSQL vs eventsourcing.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seconds", type=positive, default=5.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up time per case, not measured")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report as Markdown")
    parser.add_argument(
        "--cases",
        metavar="PATTERNS",
        help="comma-separated globs or substrings of case names, e.g. 'ilji:*,raw:row:*' (see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--url",
        help="use this existing server (a URL to a database you can create databases from) "
        f"instead of a throwaway embedded one; {ILJI_DB!r} and {ES_DB!r} are dropped and recreated",
    )
    parser.add_argument(
        "--keep-databases",
        action="store_true",
        help="with --url: leave the two databases in place afterwards",
    )
    parser.add_argument(
        "--stream-length", type=int, default=100, help="events per stream before a writer moves on"
    )
    parser.add_argument(
        "--read-min-events",
        type=int,
        default=20_000,
        help="before a read case, fill the log up to this many events if the append cases left fewer",
    )
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.stream_length < 1:
        parser.error("--stream-length must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit status is 1 when a case failed."""
    args = parse_args(argv)
    cases = select_cases(build_cases(), args.cases)
    console = Console()
    if not console.is_terminal:  # piped or redirected: don't squeeze the tables into 80 columns
        console = Console(width=140)
    if args.list:
        for case in cases:
            console.print(f"{case.name:<20} {case.describe()}")
        return 0
    if not cases:
        console.print(f"[red]no case matches {args.cases!r}[/] (see --list)")
        return 2

    with BenchServer.open(args.url) as server:
        settings = server.settings()
        info = header_info(server, settings, args)
        print_header(console, info, settings)
        config = prepare(server, args, console)
        try:
            outcomes = run_cases(cases, config, server, console)
        finally:
            if args.url and not args.keep_databases:
                for dbname in (ILJI_DB, ES_DB):
                    server.drop_database(dbname)

    print_report(console, outcomes, args.stream_length)
    if args.markdown:
        write_markdown(args.markdown, info, outcomes, args.stream_length)
        console.print(f"\nwrote {args.markdown}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
