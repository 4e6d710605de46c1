"""A test projection that catches double and missed applications, and helpers to run workers.

`Ledger` records every applied event in a table whose primary key is the event id, with the
worker and fencing token that applied it, so a second application of any event fails on the
key (and, with the stop policy, stops the partition) and ownership can be audited afterwards.
It also keeps a count of events per stream: the read model that must equal a rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ilji import NewEvent, PostgresEventStore, RecordedEvent
from ilji.projections import Context, Projection, Worker, store_options
from ilji.projections.projection import Connection

ROOT = Path(__file__).resolve().parents[2]


class Ledger(Projection):
    """Counts events per stream; records each applied event once (primary key on its id)."""

    name = "ledger"
    batch_size = 200
    on_poison = "park"
    max_attempts = 3
    retry_delay = 0.01
    max_retry_delay = 0.05

    def applied(self, ctx_or_version: Context | int) -> str:
        version = ctx_or_version if isinstance(ctx_or_version, int) else ctx_or_version.version
        return f"{self.name}_applied_v{version}"

    def counts(self, ctx_or_version: Context | int) -> str:
        version = ctx_or_version if isinstance(ctx_or_version, int) else ctx_or_version.version
        return f"{self.name}_counts_v{version}"

    async def setup(self, conn: Connection, ctx: Context) -> None:
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (event_id uuid PRIMARY KEY, position bigint NOT NULL,"
                " stream text NOT NULL, version bigint NOT NULL, worker text NOT NULL,"
                " token bigint NOT NULL, seq bigserial)"
            ).format(sql.Identifier(self.applied(ctx)))
        )
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (stream text PRIMARY KEY, events integer NOT NULL,"
                " last_version bigint NOT NULL)"
            ).format(sql.Identifier(self.counts(ctx)))
        )
        await conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (fixed boolean)").format(
                sql.Identifier(f"{self.name}_fixed")
            )
        )

    async def apply(self, conn: Connection, events: Sequence[RecordedEvent], ctx: Context) -> None:
        # Events marked {"poison": <this projection's name>} fail until the fix table has a row.
        if any(e.data.get("poison") == self.name for e in events):
            cur = await conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(f"{self.name}_fixed"))
            )
            row = await cur.fetchone()
            if not row or row[0] == 0:
                raise ValueError("poison event")
        async with conn.cursor() as cur:
            await cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (event_id, position, stream, version, worker, token)"
                    " VALUES (%s, %s, %s, %s, %s, %s)"
                ).format(sql.Identifier(self.applied(ctx))),
                [(e.id, e.position, e.stream, e.version, ctx.worker_id, ctx.fencing_token) for e in events],
            )
            per_stream: dict[str, list[int]] = defaultdict(list)
            for e in events:
                per_stream[e.stream].append(e.version)
            # The count may only grow by consecutive versions: a skipped or reordered event
            # of a stream fails the batch (and the test).
            await cur.executemany(
                sql.SQL(
                    "INSERT INTO {t} AS c (stream, events, last_version) VALUES (%s, %s, %s)"
                    " ON CONFLICT (stream) DO UPDATE SET events = c.events + EXCLUDED.events,"
                    " last_version = EXCLUDED.last_version"
                ).format(t=sql.Identifier(self.counts(ctx))),
                [(s, len(v), v[-1]) for s, v in per_stream.items()],
            )
        delay = float(getattr(self, "delay", 0.0))
        if delay:
            await asyncio.sleep(delay)


def ledger(name: str, **attributes: Any) -> Ledger:
    """A `Ledger` with another name (and other class attributes)."""
    cls = type(f"Ledger_{name}", (Ledger,), {"name": name, **attributes})
    return cls()


# Projections the e2e tests start in worker processes (`module:attribute` specs).
def crash_ledger() -> Ledger:
    """For the crash test: small batches, so a kill lands between many commits."""
    return ledger("crash", batch_size=100, on_poison="stop")


def shared_ledger() -> Ledger:
    """For the multi-worker test: a little slow, so ownership periods overlap the kills."""
    return ledger("shared", batch_size=50, on_poison="stop", delay=0.01)


def parts_ledger() -> Ledger:
    """A projection split into 4 partitions."""
    return ledger("parts", batch_size=100, on_poison="stop", partitions=4)


class CodeLedger(Ledger):
    """A `Ledger` that also records which code version applied each event (a rolling deploy)."""

    def code_table(self, ctx: Context) -> str:
        return f"{self.name}_code_v{ctx.version}"

    async def setup(self, conn: Connection, ctx: Context) -> None:
        await super().setup(conn, ctx)
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (event_id uuid PRIMARY KEY, code integer NOT NULL,"
                " worker text NOT NULL)"
            ).format(sql.Identifier(self.code_table(ctx)))
        )

    async def apply(self, conn: Connection, events: Sequence[RecordedEvent], ctx: Context) -> None:
        await super().apply(conn, events, ctx)
        async with conn.cursor() as cur:
            await cur.executemany(
                sql.SQL("INSERT INTO {} (event_id, code, worker) VALUES (%s, %s, %s)").format(
                    sql.Identifier(self.code_table(ctx))
                ),
                [(e.id, self.version, ctx.worker_id) for e in events],
            )


def _rolling(version: int, partitions: int) -> Ledger:
    cls = type(
        f"Rolling_v{version}",
        (CodeLedger,),
        {
            "name": "rolling",
            "version": version,
            "partitions": partitions,
            "batch_size": 50,
            "on_poison": "stop",
        },
    )
    return cls()


def rolling_v1() -> Ledger:
    """The code of a projection before a deploy: version 1, one partition."""
    return _rolling(1, 1)


def rolling_v2() -> Ledger:
    """The same projection after the deploy: version 2, two partitions."""
    return _rolling(2, 2)


# -- appending -----------------------------------------------------------------------------


async def append_events(
    store: PostgresEventStore, count: int, *, streams: int = 100, per_append: int = 20, prefix: str = "acct"
) -> int:
    """Append `count` events over `streams` streams, a few appends at a time; the last position."""
    last = 0
    written = 0
    names = [f"{prefix}-{uuid.uuid4().hex[:12]}" for _ in range(streams)]
    i = 0
    while written < count:
        batch = []
        for _ in range(8):
            n = min(per_append, count - written)
            if n <= 0:
                break
            batch.append(
                store.append(names[i % streams], [NewEvent("Tick", {"i": written + k}) for k in range(n)])
            )
            written += n
            i += 1
        for result in await asyncio.gather(*batch):
            last = max(last, result.last_position)
    return last


# -- worker processes ------------------------------------------------------------------------


def spawn_worker(
    url: str,
    spec: str,
    worker_id: str,
    *,
    lease_ttl: float = 5.0,
    poll_interval: float = 0.2,
    log: Path | None = None,
    pooled: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `ilji worker` as a real process (`pooled`: `url` is PgBouncer)."""
    args = [
        sys.executable,
        "-m",
        "ilji.cli",
        "worker",
        "--database-url",
        url,
        "--projection",
        f"tests.e2e.worker_fixtures:{spec}",
        "--worker-id",
        worker_id,
        "--lease-ttl",
        str(lease_ttl),
        "--poll-interval",
        str(poll_interval),
        "--log-format",
        "json",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env["ILJI_DATABASE_POOLED"] = "true" if pooled else "false"
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=out)


def kill(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGKILL) -> None:
    """Send `sig` to a worker process (ignoring one that already exited)."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM a worker and wait for it; SIGKILL if it does not exit in time."""
    kill(proc, signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(proc, signal.SIGKILL)
        proc.wait()
        raise


# -- checking ------------------------------------------------------------------------------


def checkpoint(url: str, name: str, version: int = 1) -> list[tuple[Any, ...]]:
    """(partition, position, owner, token, status, error) rows of a projection version."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT partition, position, owner, fencing_token, status, error"
            " FROM ilji.projection_checkpoints WHERE projection = %s AND version = %s ORDER BY partition",
            (name, version),
        ).fetchall()


def row_of(url: str, name: str, partition: int = 0, version: int = 1) -> tuple[Any, ...] | None:
    """The checkpoint row of one partition (see `checkpoint`), None before the worker created it."""
    rows = [r for r in checkpoint(url, name, version) if r[0] == partition]
    return rows[0] if rows else None


def owner_of(url: str, name: str, partition: int = 0) -> str | None:
    """Who holds the partition's lease (None: nobody, or not created yet)."""
    row = row_of(url, name, partition)
    return row[2] if row else None


def position_of(url: str, name: str, partition: int = 0) -> int:
    """The partition's checkpoint (0 before the worker created it)."""
    row = row_of(url, name, partition)
    return int(row[1]) if row else 0


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> float:
    """Poll `predicate()` until true; return the seconds it took; AssertionError on timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started


def verify_ledger(url: str, name: str, *, version: int = 1, prefix: str | None = None) -> dict[str, int]:
    """Assert the ledger equals a from-scratch computation over the log; return a summary.

    Every visible event of the log (of the streams starting with `prefix`) applied exactly once (the
    primary key already refuses a second time), none missing, counts per stream equal to the
    log's, and per stream the events applied in version order.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        like = f"{prefix}-%" if prefix else "%"
        log_ids = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM ilji.visible_events WHERE stream LIKE %s", (like,)
            ).fetchall()
        }
        applied_rows = conn.execute(
            sql.SQL("SELECT event_id, stream, version, seq FROM {} WHERE stream LIKE %s ORDER BY seq").format(
                sql.Identifier(f"{name}_applied_v{version}")
            ),
            (like,),
        ).fetchall()
        expected_counts = dict(
            conn.execute(
                "SELECT stream, count(*) FROM ilji.visible_events WHERE stream LIKE %s GROUP BY stream",
                (like,),
            ).fetchall()
        )
        counts = dict(
            conn.execute(
                sql.SQL("SELECT stream, events FROM {} WHERE stream LIKE %s").format(
                    sql.Identifier(f"{name}_counts_v{version}")
                ),
                (like,),
            ).fetchall()
        )
    applied_ids = [row[0] for row in applied_rows]
    duplicates = [i for i, n in Counter(applied_ids).items() if n > 1]
    assert not duplicates, f"applied twice: {duplicates[:5]}"
    missing = log_ids - set(applied_ids)
    assert not missing, f"{len(missing)} events never applied"
    extra = set(applied_ids) - log_ids
    assert not extra, f"{len(extra)} applied events are not in the log"
    assert counts == expected_counts, "counts per stream differ from a from-scratch computation"
    last_version: dict[str, int] = {}
    for _, stream, v, _ in applied_rows:
        assert v == last_version.get(stream, 0) + 1, f"stream {stream}: version {v} applied out of order"
        last_version[stream] = v
    return {"events": len(applied_ids), "streams": len(counts)}


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """Run `worker` in a task for the block; stop it and wait for the task afterwards."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 15)


@contextlib.asynccontextmanager
async def worker_store(
    url: str, projections: Sequence[Projection], *, lease_ttl: float = 5.0, **settings: Any
) -> AsyncIterator[PostgresEventStore]:
    """A store for a worker of `projections`, with the pool `ilji worker` gives it; closed afterwards."""
    options = store_options(projections, lease_ttl=lease_ttl)
    async with await PostgresEventStore.open(url, **options, **settings) as store:
        yield store


@contextlib.asynccontextmanager
async def running_on(url: str, projections: Sequence[Projection], **options: Any) -> AsyncIterator[Worker]:
    """Run a `Worker` of `projections` on a store of its own for the block (see `running`)."""
    lease_ttl = options.get("lease_ttl", 5.0)
    async with (
        worker_store(url, projections, lease_ttl=lease_ttl) as store,
        running(Worker(store, projections, **options)) as worker,
    ):
        yield worker
