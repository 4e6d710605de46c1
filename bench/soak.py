"""Soak: sustained mixed traffic against a real `ilji serve` and a real projection worker.

    .venv/bin/python bench/soak.py --minutes 15                  # the run in docs/en/reliability.md
    .venv/bin/python bench/soak.py --minutes 0.4 --report-dir /tmp/soak   # the CI form (about 25 s)

What runs, all on loopback: a PostgreSQL (a throwaway embedded one, or a fresh database on the
server `ILJI_DATABASE_URL` / `--database-url` points at), one `ilji serve` and one `ilji worker`
running the cluster rehearsal's audit projection (deploy/sim/sim_projection.py), started the
way the rehearsal starts them. This process drives them with asyncio + httpx clients:

- writers append 1-5 events with ids they choose, mostly at the version they believe the
  stream has; some deliberately at a stale version, and concurrent writers race each other,
  so 409 conflicts happen (an expected answer, counted apart from errors); some batches are
  sent again unchanged, which must be answered 200 (an idempotent retry), not stored twice;
- readers read streams forwards and backwards and check the versions they get are consecutive;
- a pager walks /v1/all from the start and keeps up with the head; others read random pages;
- SSE followers (the global log and the category) must see every event, in order;
- the projection worker follows the log; its status is polled.

Every few seconds the server's and the worker's resident memory is read from /proc. At the
end the run is judged: no 5xx or transport errors, every acknowledged event stored (by id),
nothing of a refused batch stored, each follower and the pager saw the whole log, the
projection applied every event once and equals a from-scratch rebuild (the worker builds
version 2 beside version 1 and cuts over), and the servers exit 0 without a traceback.
The memory trend is a least-squares line over the second half of the run. A table goes to
the terminal; JSON, Markdown and a PNG chart go to `--report-dir`. Exit status 1 on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "sim"))

from cluster_sim import (  # noqa: E402
    PROJECTION,
    Replica,
    free_port,
    ilji_command,
    projection_counts,
    wait_for_projection,
)

from _common import machine_info, markdown_table, percentile  # noqa: E402
from ilji.embedded import start_embedded  # noqa: E402
from ilji.store.migrate import migrate  # noqa: E402

LOOPBACK = "127.0.0.1"
CATEGORY = "soak"
EVENT_TYPES = ("ItemAdded", "ItemRemoved", "PriceChanged", "Checked")
# Answers that are part of the contract for this traffic, not errors.
EXPECTED = {"append": {"201", "200", "409"}, "read_stream": {"200"}, "read_all": {"200"}}

console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


# -- recording -------------------------------------------------------------------------------


@dataclass
class Op:
    """Latencies (seconds) and outcomes of one kind of operation."""

    latencies: array[float] = field(default_factory=lambda: array("d"))
    outcomes: Counter[str] = field(default_factory=Counter)


@dataclass
class Feed:
    """What one SSE follower (or the pager) saw: enough to prove it saw the whole log in order."""

    name: str
    count: int = 0
    position_sum: int = 0
    last_position: int = 0
    out_of_order: int = 0
    reconnects: int = 0

    def see(self, position: int) -> None:
        """Count an event; positions must strictly increase (no repeat, no going back)."""
        if position <= self.last_position:
            self.out_of_order += 1
            return
        self.count += 1
        self.position_sum += position
        self.last_position = position


@dataclass
class Run:
    """Everything the load saw, shared by the asyncio tasks (one thread: no locks needed)."""

    streams: list[str]
    versions: dict[str, int]
    last_batch: dict[str, dict[str, Any]] = field(default_factory=dict)
    ops: dict[str, Op] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    acknowledged: set[uuid.UUID] = field(default_factory=set)
    refused: set[uuid.UUID] = field(default_factory=set)
    in_doubt: set[uuid.UUID] = field(default_factory=set)
    feeds: list[Feed] = field(default_factory=list)
    interval: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def op(self, name: str) -> Op:
        """The record of operation `name`."""
        return self.ops.setdefault(name, Op())

    def record(self, name: str, outcome: str, seconds: float) -> None:
        """One finished operation; outcomes outside `EXPECTED` count as errors."""
        op = self.op(name)
        op.latencies.append(seconds)
        op.outcomes[outcome] += 1
        self.interval[name] += 1
        if outcome not in EXPECTED.get(name, {outcome}):
            self.errors[f"{name} {outcome}"] += 1

    def failure(self, name: str, exc: BaseException) -> None:
        """A transport error or a broken answer: always an error."""
        self.op(name).outcomes[type(exc).__name__] += 1
        self.errors[f"{name} {type(exc).__name__}"] += 1


# -- the load --------------------------------------------------------------------------------


async def writer(index: int, client: httpx.AsyncClient, run: Run, pace: float) -> None:
    """Append batches until stopped: current, stale or no expected version, or an exact resend."""
    rng = random.Random(index)
    while not run.stop.is_set():
        stream = rng.choice(run.streams)
        roll = rng.random()
        known = run.versions[stream]
        if roll < 0.04 and stream in run.last_batch:
            body, resend = run.last_batch[stream], True
        else:
            resend = False
            events = [
                {
                    "id": str(uuid.uuid4()),
                    "type": rng.choice(EVENT_TYPES),
                    "data": {"w": index, "k": k, "amount": rng.randint(1, 1000), "sent": time.time()},
                }
                for k in range(rng.randint(1, 5))
            ]
            body = {"events": events}
            if roll < 0.10 and known > 0:
                body["expected_version"] = known - 1  # stale on purpose: must be a 409
            elif roll >= 0.20:
                body["expected_version"] = known  # usually right; racing writers make some 409s
            # else: no expected version ("any")
        await _append(client, run, stream, body, resend)
        if pace:
            await asyncio.sleep(pace)


async def _append(
    client: httpx.AsyncClient, run: Run, stream: str, body: dict[str, Any], resend: bool
) -> None:
    ids = [uuid.UUID(e["id"]) for e in body["events"]]
    for attempt in range(5):
        started = time.perf_counter()
        try:
            response = await client.post(f"/v1/streams/{stream}", json=body)
        except httpx.HTTPError as exc:
            run.failure("append", exc)
            await asyncio.sleep(0.1 * (attempt + 1))
            continue  # the same ids make the retry safe: stored once, or answered 200
        run.record("append", str(response.status_code), time.perf_counter() - started)
        if response.status_code in (200, 201):
            if resend and response.status_code != 200:
                run.errors["append resend stored again"] += 1
            run.acknowledged.update(ids)
            run.versions[stream] = max(run.versions[stream], response.json()["last_version"])
            run.last_batch[stream] = body
            run.interval["events"] += 0 if response.status_code == 200 else len(ids)
        elif response.status_code == 409:
            actual = response.json().get("actual")
            if isinstance(actual, int):
                run.versions[stream] = max(run.versions[stream], actual)
            run.refused.update(ids)
        elif response.status_code >= 500:
            await asyncio.sleep(0.1 * (attempt + 1))
            continue
        else:
            run.refused.update(ids)
        return
    run.in_doubt.update(ids)


async def reader(index: int, client: httpx.AsyncClient, run: Run, pace: float) -> None:
    """Read written streams, forwards and backwards; versions must be consecutive."""
    rng = random.Random(1000 + index)
    while not run.stop.is_set():
        written = [s for s in rng.sample(run.streams, 4) if run.versions[s] > 0]
        if not written:
            await asyncio.sleep(0.05)
            continue
        stream = written[0]
        backward = rng.random() < 0.3
        start = rng.randint(1, run.versions[stream])
        params: dict[str, Any] = {"from_version": start, "limit": 50}
        if backward:
            params["direction"] = "backward"
        started = time.perf_counter()
        try:
            response = await client.get(f"/v1/streams/{stream}", params=params)
        except httpx.HTTPError as exc:
            run.failure("read_stream", exc)
            continue
        run.record("read_stream", str(response.status_code), time.perf_counter() - started)
        if response.status_code == 200:
            versions = [e["version"] for e in response.json()["events"]]
            step = -1 if backward else 1
            if (
                not versions
                or versions[0] != start
                or versions != list(range(start, start + step * len(versions), step))
            ):
                run.errors["read_stream versions not consecutive"] += 1
        if pace:
            await asyncio.sleep(pace)


async def pager(client: httpx.AsyncClient, run: Run, feed: Feed) -> None:
    """Walk /v1/all from the start and keep up with the head (the JSON form of a follower)."""
    after = 0
    while True:
        started = time.perf_counter()
        try:
            response = await client.get("/v1/all", params={"after": after, "limit": 500})
        except httpx.HTTPError as exc:
            run.failure("read_all", exc)
            await asyncio.sleep(0.2)
            continue
        run.record("read_all", str(response.status_code), time.perf_counter() - started)
        if response.status_code != 200:
            await asyncio.sleep(0.2)
            continue
        page = response.json()
        for event in page["events"]:
            feed.see(event["position"])
        after = page["next"]
        if not page["events"]:
            if run.stop.is_set():
                return  # caught up after the load stopped (the caller waits for the log's count)
            await asyncio.sleep(0.2)


async def random_pages(index: int, client: httpx.AsyncClient, run: Run, pace: float) -> None:
    """Read pages of /v1/all at random places in the history."""
    rng = random.Random(2000 + index)
    while not run.stop.is_set():
        head = max((f.last_position for f in run.feeds), default=0)
        started = time.perf_counter()
        try:
            response = await client.get("/v1/all", params={"after": rng.randint(0, head), "limit": 100})
        except httpx.HTTPError as exc:
            run.failure("read_all", exc)
            continue
        run.record("read_all", str(response.status_code), time.perf_counter() - started)
        await asyncio.sleep(pace or 0.01)


async def follower(url: str, path: str, run: Run, feed: Feed) -> None:
    """Follow an SSE feed from the start; reconnect with Last-Event-ID if it breaks."""
    headers = {"Accept": "text/event-stream"}
    # Heartbeats come every 15 s when idle: a minute of silence means something is wrong.
    timeout = httpx.Timeout(10, read=60)
    while True:
        if feed.last_position:
            headers["Last-Event-ID"] = str(feed.last_position)
        try:
            async with (
                httpx.AsyncClient(base_url=url, timeout=timeout) as client,
                client.stream("GET", path, headers=headers) as response,
            ):
                if response.status_code != 200:
                    run.errors[f"sse {response.status_code}"] += 1
                    await asyncio.sleep(1)
                    continue
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        event = orjson.loads(line[6:])
                        feed.see(event["position"])
                        sent = event["data"].get("sent")
                        if isinstance(sent, float):
                            run.op("sse_delivery").latencies.append(time.time() - sent)
                        run.interval["sse_events"] += 1
        except httpx.HTTPError as exc:
            run.failure("sse", exc)
        feed.reconnects += 1
        await asyncio.sleep(0.5)


async def projection_poller(client: httpx.AsyncClient, run: Run, lag: list[int]) -> None:
    """Poll the projection's status; keep the latest `events_behind`."""
    while not run.stop.is_set():
        started = time.perf_counter()
        try:
            response = await client.get(f"/v1/projections/{PROJECTION}")
        except httpx.HTTPError as exc:
            run.failure("projection_status", exc)
        else:
            # 404 until the worker has registered the projection.
            run.record("projection_status", str(response.status_code), time.perf_counter() - started)
            if response.status_code == 200:
                lag[0] = int(response.json()["events_behind"])
        await asyncio.sleep(1.0)


# -- memory ----------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (VmRSS from /proc), NaN once it is gone."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def trend(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope (per second) and intercept of (t, y) points."""
    n = len(points)
    if n < 2:
        return 0.0, points[0][1] if points else 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    slope = sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0
    return slope, my - slope * mt


def memory_verdict(samples: list[dict[str, float]], key: str) -> dict[str, Any]:
    """The trend of `key` over the second half of the run (the first half is warm-up).

    "growth trend" when the fitted line rises by more than 2 MiB or 2 % of the mean over
    that half: smaller drifts are within what the allocator does on its own.
    """
    end = samples[-1]["t"]
    half = [(s["t"], s[key]) for s in samples if s["t"] >= end / 2 and not math.isnan(s[key])]
    slope, _ = trend(half)
    window = half[-1][0] - half[0][0] if len(half) > 1 else 0.0
    mean = sum(y for _, y in half) / len(half) if half else math.nan
    rise = slope * window
    allowed = max(2.0, 0.02 * mean)
    return {
        "window_s": round(window, 1),
        "samples": len(half),
        "mean_mb": round(mean, 1),
        "min_mb": round(min(y for _, y in half), 1) if half else None,
        "max_mb": round(max(y for _, y in half), 1) if half else None,
        "slope_mb_per_hour": round(slope * 3600, 2),
        "fitted_change_mb": round(rise, 2),
        "allowed_change_mb": round(allowed, 2),
        "verdict": "no growth trend" if rise <= allowed else "growth trend",
    }


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Config:
    """The run's knobs (see `--help`)."""

    seconds: float
    writers: int
    readers: int
    followers: int
    streams: int
    pace: float
    sample_every: float
    check_memory: bool


async def drive(
    api: str, server_pid: int, worker_pid: int, cfg: Config
) -> tuple[Run, list[dict[str, float]]]:
    """Run the load for `cfg.seconds`, sampling memory and throughput; then stop and let feeds catch up."""
    streams = [f"{CATEGORY}-{uuid.uuid4().hex[:10]}" for _ in range(cfg.streams)]
    run = Run(streams=streams, versions=dict.fromkeys(streams, 0))
    limits = httpx.Limits(max_connections=4)
    clients = [httpx.AsyncClient(base_url=api, timeout=30, limits=limits) for _ in range(4)]
    lag = [0]
    tasks: list[asyncio.Task[None]] = []
    feeds: list[asyncio.Task[None]] = []
    for i in range(cfg.followers):
        path = "/v1/all" if i % 2 == 0 else f"/v1/categories/{CATEGORY}"
        feed = Feed(f"sse {path} #{i + 1}")
        run.feeds.append(feed)
        feeds.append(asyncio.create_task(follower(api, path, run, feed)))
    page_feed = Feed("pager /v1/all")
    run.feeds.append(page_feed)
    paging = asyncio.create_task(pager(clients[0], run, page_feed))
    for i in range(cfg.writers):
        tasks.append(asyncio.create_task(writer(i, clients[i % 4], run, cfg.pace)))
    for i in range(cfg.readers):
        tasks.append(asyncio.create_task(reader(i, clients[(i + 1) % 4], run, cfg.pace)))
    tasks.append(asyncio.create_task(random_pages(0, clients[2], run, cfg.pace * 4)))
    tasks.append(asyncio.create_task(projection_poller(clients[3], run, lag)))

    samples: list[dict[str, float]] = [
        {"t": 0.0, "server_rss_mb": rss_mb(server_pid), "worker_rss_mb": rss_mb(worker_pid)}
        | dict.fromkeys(("appends_per_s", "events_per_s", "reads_per_s", "sse_events_per_s"), 0.0)
        | {"projection_behind": 0.0, "load_1m": os.getloadavg()[0]}
    ]
    started = time.monotonic()
    last = started
    next_log = started
    log_every = 60.0 if cfg.seconds > 300 else 5.0
    while (now := time.monotonic()) < started + cfg.seconds:
        await asyncio.sleep(min(cfg.sample_every, started + cfg.seconds - now))
        now = time.monotonic()
        took = now - last
        last = now
        counts, run.interval = run.interval, Counter()
        sample = {
            "t": round(now - started, 2),
            "server_rss_mb": rss_mb(server_pid),
            "worker_rss_mb": rss_mb(worker_pid),
            "appends_per_s": counts["append"] / took,
            "events_per_s": counts["events"] / took,
            "reads_per_s": (counts["read_stream"] + counts["read_all"]) / took,
            "sse_events_per_s": counts["sse_events"] / took,
            "projection_behind": float(lag[0]),
            # The machine is shared: the load average says how much else was running.
            "load_1m": os.getloadavg()[0],
        }
        samples.append(sample)
        if now >= next_log:
            next_log = now + log_every
            console.log(
                f"{sample['t']:6.0f}/{cfg.seconds:.0f} s  appends/s {sample['appends_per_s']:6.0f}  "
                f"events {len(run.acknowledged):8d}  409 {run.op('append').outcomes['409']:6d}  "
                f"errors {sum(run.errors.values()):3d}  server RSS {sample['server_rss_mb']:6.1f} MiB  "
                f"worker RSS {sample['worker_rss_mb']:6.1f} MiB  projection behind {lag[0]}"
            )
    run.stop.set()
    await asyncio.gather(*tasks)
    await asyncio.wait_for(paging, 120)
    for client in clients:
        await client.aclose()
    return run, samples


async def wait_feeds(run: Run, total: int, within: float) -> float:
    """Wait until every feed has counted `total` events (at most `within` s); seconds taken."""
    started = time.monotonic()
    # Polling: the feeds are plain counters that several tasks bump, no event to wait on.
    while any(f.count < total for f in run.feeds) and time.monotonic() - started < within:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def store_checks(url: str, run: Run) -> dict[str, Any]:
    """Compare what the clients were told with what PostgreSQL holds, by event id."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE acked (id uuid PRIMARY KEY)")
        conn.execute("CREATE TEMP TABLE refused (id uuid PRIMARY KEY)")
        for table, ids in (("acked", run.acknowledged), ("refused", run.refused)):
            with conn.cursor().copy(sql.SQL("COPY {} (id) FROM STDIN").format(sql.Identifier(table))) as copy:
                for event_id in ids:
                    copy.write_row((event_id,))

        def one(query: str) -> int:
            row = conn.execute(query).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        return {
            "events_in_store": one("SELECT count(*) FROM ilji.events"),
            "events_acknowledged": len(run.acknowledged),
            "lost": one(
                "SELECT count(*) FROM acked a"
                " WHERE NOT EXISTS (SELECT 1 FROM ilji.events e WHERE e.id = a.id)"
            ),
            "stored_unacknowledged": one(
                "SELECT count(*) FROM ilji.events e"
                " WHERE NOT EXISTS (SELECT 1 FROM acked a WHERE a.id = e.id)"
            ),
            "refused_but_stored": one("SELECT count(*) FROM refused r JOIN ilji.events e ON e.id = r.id"),
            "duplicate_ids": one("SELECT count(*) - count(DISTINCT id) FROM ilji.events"),
            "position_sum": one("SELECT coalesce(sum(position), 0) FROM ilji.events"),
            "version_gaps": one(
                "SELECT count(*) FROM (SELECT stream, count(*) AS n, max(version) AS v FROM ilji.events"
                " GROUP BY stream) s WHERE n <> v"
            ),
        }


def rebuild_and_compare(api: str, url: str, timeout: float) -> dict[str, Any]:
    """Rebuild the projection from scratch (version 2 beside 1, then cutover) and compare both."""
    started = time.monotonic()
    with httpx.Client(base_url=api, timeout=30) as client:
        response = client.post(f"/v1/projections/{PROJECTION}/rebuild")
        response.raise_for_status()
        version = int(response.json()["version"])
        status: dict[str, Any] = {}
        while time.monotonic() - started < timeout:
            status = client.get(f"/v1/projections/{PROJECTION}").json()
            if status["active_version"] == version and status["events_behind"] == 0:
                break
            time.sleep(0.5)
    took = time.monotonic() - started
    if status.get("active_version") != version:
        return {"rebuild_version": version, "rebuild_cut_over": False, "rebuild_s": round(took, 1)}
    columns = "event_id, stream, version, position"
    with psycopg.connect(url, autocommit=True) as conn:

        def differ(a: int, b: int) -> int:
            query = sql.SQL("SELECT count(*) FROM (SELECT {c} FROM {a} EXCEPT SELECT {c} FROM {b}) d").format(
                c=sql.SQL(columns),
                a=sql.Identifier(f"sim_applied_v{a}"),
                b=sql.Identifier(f"sim_applied_v{b}"),
            )
            row = conn.execute(query).fetchone()
            return int(row[0]) if row else -1

        rows = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(f"sim_applied_v{version}"))
        ).fetchone()
        dups = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(f"sim_duplicates_v{version}"))
        ).fetchone()
        return {
            "rebuild_version": version,
            "rebuild_cut_over": True,
            "rebuild_s": round(took, 1),
            "rebuild_rows": int(rows[0]) if rows else -1,
            "rebuild_applied_twice": int(dups[0]) if dups else -1,
            "live_not_in_rebuild": differ(1, version),
            "rebuild_not_in_live": differ(version, 1),
        }


@contextlib.contextmanager
def database(url: str | None) -> Iterator[tuple[str, str]]:
    """A fresh database: on the server at `url`, or on a throwaway embedded PostgreSQL."""
    base = Path(tempfile.mkdtemp(prefix="ilji-soak-"))
    os.chmod(base, 0o755)  # as root, the embedded PostgreSQL runs as another user and must read it
    embedded = None
    try:
        if url is None:
            embedded = start_embedded(base / "data")
            url = embedded.admin_url()
            where = "embedded PostgreSQL (throwaway)"
        else:
            where = "existing PostgreSQL server (ILJI_DATABASE_URL)"
        name = f"ilji_soak_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conninfo = make_conninfo(url, dbname=name)
        try:
            # As the migrate Job does before the replicas: servers and workers only check the schema.
            asyncio.run(migrate(conninfo))
            yield conninfo, where
        finally:
            with contextlib.suppress(psycopg.Error), psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(base, ignore_errors=True)


def soak(cfg: Config, url: str | None) -> dict[str, Any]:
    """Start PostgreSQL, the server and the worker; drive the load; check; return the report."""
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "commit": _commit(),
        "config": cfg.__dict__,
    }
    with database(url) as (db, where):
        report["database"] = where
        logs = Path(tempfile.mkdtemp(prefix="ilji-soak-logs-"))
        api = Replica("api", 1, db, logs, port=free_port())
        worker = Replica("worker", 1, db, logs)
        try:
            subprocess_migrate(db)
            api.start()
            worker.start()
            assert api.proc is not None and worker.proc is not None
            base = f"http://{LOOPBACK}:{api.port}"
            console.log(f"server pid {api.proc.pid} on {base}, worker pid {worker.proc.pid}; {where}")
            run, samples = asyncio.run(
                _drive_and_wait(base, db, (api.proc.pid, worker.proc.pid), cfg, report)
            )
            console.log("load stopped; checking the store, the feeds and the projection")
            store = store_checks(db, run)
            feeds = {f.name: f for f in run.feeds}
            log_ids = _log_ids(db)
            caught_up = wait_for_projection(db, len(log_ids), 120)
            projection = {"projection_caught_up": caught_up, **projection_counts(db, log_ids)}
            projection.update(rebuild_and_compare(base, db, 300))
            report["load_seconds"] = cfg.seconds
            report["samples"] = samples
            report["operations"] = _operations(run, cfg.seconds)
            report["errors"] = dict(run.errors)
            report["in_doubt"] = len(run.in_doubt)
            report["store"] = store
            report["feeds"] = {
                name: {
                    "events": f.count,
                    "position_sum_matches": f.position_sum == store["position_sum"],
                    "out_of_order": f.out_of_order,
                    "reconnects": f.reconnects,
                }
                for name, f in feeds.items()
            }
            report["projection"] = projection
            report["memory"] = {
                "server": memory_verdict(samples, "server_rss_mb"),
                "worker": memory_verdict(samples, "worker_rss_mb"),
            }
        finally:
            codes = {}
            for replica in (api, worker):
                replica.signal(signal.SIGTERM)
            for replica in (api, worker):
                if replica.proc is not None:
                    codes[replica.kind] = replica.wait(20)
            traces = [p.name for p in logs.glob("*.log") if "Traceback" in p.read_text(errors="replace")]
            shutil.rmtree(logs, ignore_errors=True)
        report["exit_codes"] = codes
        report["tracebacks_in_logs"] = traces
    report["machine"]["Load average at the end"] = machine_info()["Load average"]
    loads = [s["load_1m"] for s in report.get("samples", [])]
    if loads:
        report["machine"]["1-minute load during the run"] = (
            f"min {min(loads):.2f}, mean {sum(loads) / len(loads):.2f}, max {max(loads):.2f}"
        )
    report["failed"] = verdict(report)
    return report


def subprocess_migrate(db: str) -> None:
    """`ilji migrate` once before the processes start, as the migrate Job does."""
    import subprocess

    subprocess.run([*ilji_command(), "migrate", "--database-url", db], check=True, capture_output=True)


async def _drive_and_wait(
    base: str, db: str, pids: tuple[int, int], cfg: Config, report: dict[str, Any]
) -> tuple[Run, list[dict[str, float]]]:
    run, samples = await drive(base, *pids, cfg)
    # Every feed must reach the log's full count: what was acknowledged, plus anything an
    # unanswered request stored (none unless there were transport errors).
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM ilji.events").fetchone()
    total = int(row[0]) if row else 0
    report["feeds_catch_up_s"] = round(await wait_feeds(run, total, 60), 2)
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.cancel()
    return run, samples


def _commit() -> str:
    """The repository's commit, marked when the working tree has changes (what was measured)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (
        " (with local changes)" if git("status", "--porcelain", "src") else ""
    )


def _log_ids(db: str) -> set[uuid.UUID]:
    with psycopg.connect(db, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM ilji.events")}


def _operations(run: Run, seconds: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, op in sorted(run.ops.items()):
        ordered = sorted(op.latencies)
        out[name] = {
            "count": len(ordered) if name == "sse_delivery" else sum(op.outcomes.values()),
            "per_s": round(
                (len(ordered) if name == "sse_delivery" else sum(op.outcomes.values())) / seconds, 1
            ),
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 2) if ordered else None,
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2) if ordered else None,
            "p999_ms": round(percentile(ordered, 0.999) * 1000, 2) if ordered else None,
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
            "outcomes": dict(op.outcomes),
        }
    return out


# -- the verdict and the report --------------------------------------------------------------


def checks(report: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(what, value, ok) for every expectation of the run."""
    store, proj, ops = report["store"], report["projection"], report["operations"]
    stored = store["events_in_store"]
    server_errors = sum(n for op in ops.values() for k, n in op["outcomes"].items() if k.startswith("5"))
    append = ops.get("append", {"outcomes": {}})["outcomes"]
    out = [
        ("server errors (5xx)", str(server_errors), server_errors == 0),
        (
            "other errors (transport, unexpected status, bad page)",
            str(sum(report["errors"].values())),
            not report["errors"],
        ),
        (
            "409 conflicts happened (expected, not errors)",
            str(append.get("409", 0)),
            append.get("409", 0) > 0,
        ),
        ("exact resends answered 200, stored once", str(append.get("200", 0)), append.get("200", 0) > 0),
        ("batches left in doubt", str(report["in_doubt"]), report["in_doubt"] == 0),
        ("acknowledged events", str(store["events_acknowledged"]), store["events_acknowledged"] > 0),
        ("events in the store", str(stored), stored == store["events_acknowledged"]),
        ("acknowledged but not stored (lost)", str(store["lost"]), store["lost"] == 0),
        (
            "stored but never acknowledged",
            str(store["stored_unacknowledged"]),
            store["stored_unacknowledged"] == 0,
        ),
        (
            "events of refused batches stored (partial)",
            str(store["refused_but_stored"]),
            store["refused_but_stored"] == 0,
        ),
        ("event ids stored twice", str(store["duplicate_ids"]), store["duplicate_ids"] == 0),
        ("streams with version gaps", str(store["version_gaps"]), store["version_gaps"] == 0),
    ]
    for name, feed in report["feeds"].items():
        ok = feed["events"] == stored and feed["position_sum_matches"] and feed["out_of_order"] == 0
        out.append(
            (f"{name} saw every event in order", f"{feed['events']} (reconnects {feed['reconnects']})", ok)
        )
    out += [
        ("projection caught up", str(proj["projection_caught_up"]), bool(proj["projection_caught_up"])),
        (
            "projection rows = log events",
            f"{proj['projection_applied']} / {stored}",
            proj["projection_applied"] == stored,
        ),
        (
            "projection: applied twice / skipped / out of order",
            " / ".join(
                str(proj[k])
                for k in ("projection_applied_twice", "projection_skipped", "projection_out_of_order")
            ),
            proj["projection_applied_twice"]
            == proj["projection_skipped"]
            == proj["projection_out_of_order"]
            == 0,
        ),
        (
            "projection: failed partitions / parked",
            f"{proj['projection_partitions_failed']} / {proj['projection_parked']}",
            proj["projection_partitions_failed"] == proj["projection_parked"] == 0,
        ),
        (
            "rebuild cut over",
            f"version {proj['rebuild_version']} in {proj['rebuild_s']} s",
            proj["rebuild_cut_over"],
        ),
    ]
    if proj["rebuild_cut_over"]:
        same = (
            proj["live_not_in_rebuild"] == proj["rebuild_not_in_live"] == 0 and proj["rebuild_rows"] == stored
        )
        out.append(
            (
                "read model = from-scratch rebuild (rows differing)",
                f"{proj['live_not_in_rebuild']} + {proj['rebuild_not_in_live']}",
                same and proj["rebuild_applied_twice"] == 0,
            )
        )
    out.append(
        (
            "server and worker exit 0 on SIGTERM",
            str(report["exit_codes"]),
            all(c == 0 for c in report["exit_codes"].values()),
        )
    )
    out.append(
        ("tracebacks in the logs", str(len(report["tracebacks_in_logs"])), not report["tracebacks_in_logs"])
    )
    if report["config"]["check_memory"]:
        for who, mem in report["memory"].items():
            out.append(
                (
                    f"{who} memory: {mem['verdict']}",
                    f"{mem['slope_mb_per_hour']:+.1f} MiB/h",
                    mem["verdict"] == "no growth trend",
                )
            )
    return out


def verdict(report: dict[str, Any]) -> list[str]:
    """The failed expectations (empty: the run passed)."""
    if "store" not in report:
        return ["the run did not finish"]
    return [what for what, _, ok in checks(report) if not ok]


def summary(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline numbers."""
    ops = report["operations"]
    requests = sum(op["count"] for name, op in ops.items() if name != "sse_delivery")
    server_errors = sum(n for op in ops.values() for k, n in op["outcomes"].items() if k.startswith("5"))
    server, worker = report["memory"]["server"], report["memory"]["worker"]
    return [
        ("load duration", f"{report['load_seconds'] / 60:.1f} min ({report['load_seconds']:.0f} s)"),
        ("requests", f"{requests:,} ({requests / report['load_seconds']:,.0f}/s)"),
        ("events appended", f"{report['store']['events_acknowledged']:,}"),
        (
            "SSE events delivered",
            f"{ops.get('sse_delivery', {}).get('count', 0):,} to {report['config']['followers']} followers",
        ),
        ("errors", f"{sum(report['errors'].values())} ({server_errors} server errors)"),
        (
            "server RSS, 2nd half",
            f"{server['min_mb']}–{server['max_mb']} MiB, {server['slope_mb_per_hour']:+.1f} MiB/h:"
            f" {server['verdict']}",
        ),
        (
            "worker RSS, 2nd half",
            f"{worker['min_mb']}–{worker['max_mb']} MiB, {worker['slope_mb_per_hour']:+.1f} MiB/h:"
            f" {worker['verdict']}",
        ),
        ("verdict", "PASS" if not report["failed"] else "FAIL: " + "; ".join(report["failed"])),
    ]


OP_HEADERS = ("operation", "count", "per s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "outcomes")


def op_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per operation."""
    rows = []
    for name, op in report["operations"].items():
        outcomes = ", ".join(f"{k}: {v:,}" for k, v in sorted(op["outcomes"].items())) or "–"
        rows.append(
            [
                name,
                f"{op['count']:,}",
                f"{op['per_s']:,.1f}",
                *(
                    f"{op[k]:,.2f}" if op[k] is not None else "–"
                    for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms")
                ),
                outcomes,
            ]
        )
    return rows


def print_report(report: dict[str, Any]) -> None:
    """Tables on the terminal."""
    out = Console()
    if not out.is_terminal:
        out = Console(width=140)  # a log file: no need to wrap at 80 columns
    head = Table(title="Soak run", show_header=False)
    for key, value in summary(report):
        head.add_row(key, value)
    out.print(head)
    ops = Table(title="Operations (latency as seen by the client)")
    for i, title in enumerate(OP_HEADERS):
        ops.add_column(title, justify="left" if i in (0, 7) else "right")
    for row in op_rows(report):
        ops.add_row(*row)
    out.print(ops)
    table = Table(title="Consistency")
    for title in ("check", "value", "ok"):
        table.add_column(title)
    for what, value, ok in checks(report):
        table.add_row(what, value, "[green]yes[/]" if ok else "[red]NO[/]")
    out.print(table)


def markdown(report: dict[str, Any], chart: str | None) -> str:
    """The report as Markdown (written next to the JSON)."""
    machine = report["machine"]
    parts = [
        "# Soak run",
        "",
        f"Started {report['started_at']} at commit {report['commit']}; {report['database']};"
        " one `ilji serve`, one `ilji worker`"
        f" (projection `{PROJECTION}`, 4 partitions), load from one asyncio process:"
        f" {report['config']['writers']} writers, {report['config']['readers']} stream readers,"
        " a /v1/all pager and a random-page reader,"
        f" {report['config']['followers']} SSE followers, a projection status poller.",
        "",
        markdown_table(["", ""], summary(report), [False, False]),
        "",
        "## Machine",
        "",
        markdown_table(["", ""], list(machine.items()), [False, False]),
        "",
        "## Operations",
        "",
        "Latency is what the client measured, from sending the request to reading the whole answer;"
        " `sse_delivery` is from the start of the append to the event arriving at a follower.",
        "",
        markdown_table(OP_HEADERS, op_rows(report), [False, True, True, True, True, True, True, False]),
        "",
        "## Consistency",
        "",
        markdown_table(
            ["check", "value", "ok"],
            [[w, v, "yes" if ok else "NO"] for w, v, ok in checks(report)],
            [False, True, False],
        ),
        "",
        "## Memory",
        "",
        "Resident memory (VmRSS) sampled every"
        f" {report['config']['sample_every']:.0f} s; the trend is a least-squares line over the second"
        ' half of the run (the first half is warm-up). "growth trend" when that line rises by more than'
        " 2 MiB or 2 % of the mean over the half.",
        "",
        markdown_table(
            ["process", "mean MiB", "min", "max", "slope MiB/h", "fitted change MiB", "verdict"],
            [
                [
                    who,
                    m["mean_mb"],
                    m["min_mb"],
                    m["max_mb"],
                    m["slope_mb_per_hour"],
                    m["fitted_change_mb"],
                    m["verdict"],
                ]
                for who, m in report["memory"].items()
            ],
            [False, True, True, True, True, True, False],
        ),
        "",
    ]
    if chart:
        parts += [f"![Resident memory and throughput over time]({chart})", ""]
    return "\n".join(parts)


def draw(report: dict[str, Any], path: Path) -> None:
    """RSS of the server and the worker, and throughput, over time (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t"] / 60 for s in samples]
    fig, (mem, rate) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for key, label in (("server_rss_mb", "ilji serve"), ("worker_rss_mb", "ilji worker")):
        mem.plot(t, [s[key] for s in samples], label=f"{label} RSS")
        half = [(s["t"], s[key]) for s in samples if s["t"] >= samples[-1]["t"] / 2]
        slope, intercept = trend(half)
        ends = [half[0][0], half[-1][0]]
        mem.plot([x / 60 for x in ends], [intercept + slope * x for x in ends], "--", color="grey")
    mem.set_ylabel("MiB")
    mem.set_ylim(bottom=0)
    mem.legend(loc="lower right")
    mem.set_title("Resident memory (dashed: trend over the second half)")
    rate.plot(t, [s["appends_per_s"] for s in samples], label="appends/s")
    rate.plot(t, [s["events_per_s"] for s in samples], label="events stored/s")
    rate.plot(t, [s["reads_per_s"] for s in samples], label="reads/s")
    followers = max(1, report["config"]["followers"])
    rate.plot(t, [s["sse_events_per_s"] / followers for s in samples], ":", label="SSE events/s per follower")
    rate.set_ylabel("per second")
    rate.set_xlabel("minutes")
    rate.set_ylim(bottom=0)
    rate.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, soak, print and write the report; exit 1 if a check failed."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--minutes", type=float, default=15.0, help="minutes of load (default 15)")
    parser.add_argument("--writers", type=int, default=6, help="appending clients (default 6)")
    parser.add_argument("--readers", type=int, default=3, help="stream-reading clients (default 3)")
    parser.add_argument("--followers", type=int, default=6, help="SSE followers (default 6)")
    parser.add_argument("--streams", type=int, default=40, help="streams the writers share (default 40)")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.01,
        help="seconds each client waits between its requests (default 0.01)",
    )
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument(
        "--check-memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fail on a memory growth trend (default: for runs of 10 minutes or more)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to use (default ILJI_DATABASE_URL, else embedded)",
    )
    parser.add_argument("--report-dir", type=Path, default=ROOT / "docs" / "assets" / "soak")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60:
        parser.error("--minutes must be above 0 and at most a day")
    seconds = args.minutes * 60
    cfg = Config(
        seconds=seconds,
        writers=args.writers,
        readers=args.readers,
        followers=args.followers,
        streams=args.streams,
        pace=args.pace,
        sample_every=min(args.sample_every, seconds / 6),
        # Half of a shorter run is still warm-up: its trend says little, so it is reported only.
        check_memory=args.minutes >= 10 if args.check_memory is None else args.check_memory,
    )
    from ilji.settings import load_settings

    url = args.database_url or load_settings().database_url
    report = soak(cfg, url)
    print_report(report)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    chart = args.report_dir / "soak-report.png"
    draw(report, chart)
    (args.report_dir / "soak-report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.report_dir / "soak-report.md").write_text(markdown(report, chart.name))
    console.log(f"report written to {args.report_dir}")
    return 0 if not report["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
