"""The projection routes and gauges of a real `ilji serve`, with a real `ilji worker` process.

One server and one worker run two `Ledger` projections for the whole module: `served` (waits,
pause/resume, rebuild) and `poisoned` (parked events and their replay). Tokens are on, so
every test also shows which role may do what.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server_helpers import TOKEN_SPEC, TOKENS, Server, running_server, stream_name
from tests.e2e.worker_fixtures import ROOT, Ledger, ledger, stop, wait_until

pytestmark = pytest.mark.timeout(120)

SPEC = "tests.e2e.test_server_projections:projections"


def projections() -> list[Ledger]:
    """What the worker process runs (`ilji worker -p tests.e2e.test_server_projections:projections`)."""
    return [ledger("served", batch_size=100), ledger("poisoned", batch_size=100)]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    env = {"ILJI_API_TOKENS": TOKEN_SPEC, "ILJI_MONITOR_INTERVAL": "0.2", "ILJI_ACCESS_LOG": "false"}
    with running_server(database_url, env=env) as s:
        yield s


@pytest.fixture(scope="module")
def worker(database_url: str, server: Server) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "ilji.cli", "worker", "-p", SPEC, "--database-url", database_url]
    args += ["--worker-id", "w1", "--lease-ttl", "1.5", "--poll-interval", "0.1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ILJI_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with server.client(TOKENS["reader"]) as client:
            wait_until(lambda: _registered(client) >= {"served", "poisoned"}, timeout=30, interval=0.1)
        yield proc
    finally:
        assert stop(proc) == 0


@pytest.fixture
def admin(server: Server, worker: Any) -> Iterator[httpx.Client]:
    with server.client(TOKENS["admin"]) as client:
        yield client


@pytest.fixture
def reader(server: Server, worker: Any) -> Iterator[httpx.Client]:
    with server.client(TOKENS["reader"]) as client:
        yield client


def _registered(client: httpx.Client) -> set[str]:
    response = client.get("/v1/projections")
    return {p["name"] for p in response.json()["projections"]} if response.status_code == 200 else set()


def _append(client: httpx.Client, data: dict[str, Any] | None = None, prefix: str = "acct") -> int:
    response = client.post(
        f"/v1/streams/{stream_name(prefix)}", json={"events": [{"type": "Tick", "data": data or {}}]}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["last_position"])


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _status(client: httpx.Client, name: str) -> dict[str, Any]:
    response = client.get(f"/v1/projections/{name}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_status_lists_every_projection_with_its_partitions(reader: httpx.Client, admin: httpx.Client) -> None:
    last = _append(admin)
    assert reader.get("/v1/projections/served/wait", params={"position": last}).status_code == 200
    listed = {p["name"]: p for p in reader.get("/v1/projections").json()["projections"]}
    assert {"served", "poisoned"} <= listed.keys()
    served = _status(reader, "served")
    assert served.keys() == listed["served"].keys()
    assert (served["active_version"], served["paused"], served["requested_version"]) == (1, False, None)
    (partition,) = served["partitions"]
    assert partition["checkpoint"] >= last
    assert partition["owner"] == "w1" and partition["fencing_token"] >= 1
    assert partition["state"] == "running"
    assert partition["events_behind"] == 0 and partition["parked"] == 0
    assert {"lag_seconds", "events_per_second", "lease_expires_at"} <= partition.keys()
    # The worker, with the code version it runs and what it does; nothing refused.
    (worker,) = served["workers"]
    assert (worker["worker"], worker["code_version"], worker["versions"], worker["state"]) == (
        "w1",
        1,
        [1],
        "serving",
    )
    assert worker["error"] is None and served["errors"] == []


def test_unknown_projection_is_a_404_problem_everywhere(reader: httpx.Client, admin: httpx.Client) -> None:
    started = time.monotonic()
    answers = [
        reader.get("/v1/projections/nope"),
        reader.get("/v1/projections/nope/parked"),
        reader.get("/v1/projections/nope/wait", params={"position": 1, "timeout": 10}),
        admin.post("/v1/projections/nope/pause"),
        admin.post("/v1/projections/nope/resume"),
        admin.post("/v1/projections/nope/rebuild"),
        admin.post("/v1/projections/nope/parked/replay"),
    ]
    assert time.monotonic() - started < 5  # the wait does not sit out its timeout for a typo
    for response in answers:
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:ilji:problem:projection-not-found"
        assert response.json()["projection"] == "nope"


def test_pause_stops_the_projection_until_resume(reader: httpx.Client, admin: httpx.Client) -> None:
    paused = admin.post("/v1/projections/served/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["state"] == "paused"
    # The owner lets go within a third of the lease TTL; nothing moves while paused.
    wait_until(lambda: _status(reader, "served")["partitions"][0]["owner"] is None, timeout=5, interval=0.05)
    last = _append(admin)
    waited = reader.get("/v1/projections/served/wait", params={"position": last, "timeout": 1})
    assert waited.status_code == 504, waited.text
    assert waited.headers["content-type"] == "application/problem+json"
    assert waited.json()["type"] == "urn:ilji:problem:projection-wait-timeout"
    assert waited.json()["position"] == last
    resumed = admin.post("/v1/projections/served/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    waited = reader.get("/v1/projections/served/wait", params={"position": last, "timeout": 10})
    assert waited.status_code == 200, waited.text
    assert waited.json() == {"projection": "served", "position": last, "reached": True}


def test_wait_timeout_is_bounded(reader: httpx.Client) -> None:
    response = reader.get("/v1/projections/served/wait", params={"position": 1, "timeout": 31})
    assert response.status_code == 422
    assert reader.get("/v1/projections/served/wait").status_code == 422  # position is required


def test_parked_events_are_listed_and_replayed_on_request(
    reader: httpx.Client, admin: httpx.Client, database_url: str
) -> None:
    good = _append(admin)
    bad = _append(admin, {"poison": "poisoned"}, prefix="bad")
    after = _append(admin)
    # The poison event is parked after its attempts; the events around it flow.
    assert reader.get("/v1/projections/poisoned/wait", params={"position": after}).status_code == 200
    parked = reader.get("/v1/projections/poisoned/parked").json()
    assert parked["projection"] == "poisoned"
    (event,) = parked["events"]
    assert (event["position"], event["attempts"], event["replayed_at"]) == (bad, 3, None)
    assert "poison event" in event["error"]
    assert good < bad < after
    assert _status(reader, "poisoned")["parked"] == 1

    with psycopg.connect(database_url, autocommit=True) as conn:  # "fix the handler"
        conn.execute("INSERT INTO poisoned_fixed VALUES (true)")
    unknown = str(uuid.uuid4())
    requested = admin.post(
        "/v1/projections/poisoned/parked/replay", json={"event_ids": [event["event_id"], unknown]}
    )
    assert requested.status_code == 202, requested.text
    assert requested.json() == {
        "projection": "poisoned",
        "requested": 1,
        "event_ids": [event["event_id"], unknown],
    }
    wait_until(lambda: not reader.get("/v1/projections/poisoned/parked").json()["events"], timeout=10)
    history = reader.get("/v1/projections/poisoned/parked", params={"include_replayed": True}).json()
    assert [e["event_id"] for e in history["events"]] == [event["event_id"]]
    assert history["events"][0]["replayed_at"] is not None
    assert _status(reader, "poisoned")["parked"] == 0


def test_read_role_reads_admin_role_acts(server: Server, reader: httpx.Client, worker: Any) -> None:
    for path in ("/v1/projections", "/v1/projections/served", "/v1/projections/served/parked"):
        assert reader.get(path).status_code == 200
    actions = ("pause", "resume", "rebuild", "parked/replay")
    with server.client(TOKENS["writer"]) as writer, server.client() as anonymous:
        for action in actions:
            for client, status in ((reader, 403), (writer, 403), (anonymous, 401)):
                response = client.post(f"/v1/projections/served/{action}")
                assert response.status_code == status, (action, response.text)
                assert response.headers["content-type"] == "application/problem+json"
        assert anonymous.get("/v1/projections").status_code == 401
    assert _status(reader, "served")["paused"] is False  # nothing happened


def test_metrics_show_projection_gauges(reader: httpx.Client, admin: httpx.Client) -> None:
    last = _append(admin)
    assert reader.get("/v1/projections/served/wait", params={"position": last}).status_code == 200

    served = {"projection": "served", "version": "1", "partition": "0"}
    poisoned = {"projection": "poisoned", "version": "1", "partition": "0"}
    wanted = {
        ("ilji_projection_checkpoint", _key(served)): float(last),
        ("ilji_projection_state", _key({**served, "state": "running"})): 1.0,
        ("ilji_projection_state", _key({**served, "state": "failed"})): 0.0,
        ("ilji_projection_events_behind", _key(served)): 0.0,
        ("ilji_projection_lag_seconds", _key(served)): 0.0,
        ("ilji_projection_parked", _key(poisoned)): 0.0,
        ("ilji_projection_fencing_token", _key(served)): None,
        ("ilji_projection_events_per_second", _key(served)): None,
        ("ilji_projection_active_version", _key({"projection": "served"})): 1.0,
        ("ilji_projection_paused", _key({"projection": "served"})): 0.0,
        (
            "ilji_projection_workers",
            _key({"projection": "served", "code_version": "1", "state": "serving"}),
        ): 1.0,
    }
    # The monitor loop refreshes the snapshot every ILJI_MONITOR_INTERVAL (0.2 s here).
    deadline = time.monotonic() + 10
    while True:
        text = reader.get("/metrics").text
        samples = {
            (s.name, _key(s.labels)): s.value for f in text_string_to_metric_families(text) for s in f.samples
        }
        wrong = {
            k: samples.get(k) for k, v in wanted.items() if k not in samples or v not in (None, samples[k])
        }
        if not wrong:
            break
        assert time.monotonic() < deadline, f"wrong {wrong} in:\n{text}"
        time.sleep(0.1)
    assert samples[("ilji_background_loop_runs_total", _key({"loop": "projection_metrics", "outcome": "ok"}))]


def test_rebuild_builds_a_new_version_and_cuts_over(reader: httpx.Client, admin: httpx.Client) -> None:
    before = _status(reader, "served")["active_version"]
    response = admin.post("/v1/projections/served/rebuild")
    assert response.status_code == 202, response.text
    assert response.json() == {"projection": "served", "version": before + 1}
    assert _status(reader, "served")["requested_version"] == before + 1
    # The worker builds the new version from position 0 beside the serving one, then cuts over.
    wait_until(lambda: _status(reader, "served")["active_version"] == before + 1, timeout=20, interval=0.1)
    last = _append(admin)
    assert reader.get("/v1/projections/served/wait", params={"position": last}).status_code == 200


def test_the_routes_are_documented(reader: httpx.Client) -> None:
    paths = reader.get("/openapi.json").json()["paths"]
    assert {
        "/v1/projections",
        "/v1/projections/{name}",
        "/v1/projections/{name}/pause",
        "/v1/projections/{name}/resume",
        "/v1/projections/{name}/rebuild",
        "/v1/projections/{name}/parked",
        "/v1/projections/{name}/parked/replay",
        "/v1/projections/{name}/wait",
    } <= paths.keys()
    wait = paths["/v1/projections/{name}/wait"]["get"]["responses"]
    assert {"200", "401", "403", "404", "504"} <= wait.keys()
    assert "application/problem+json" in wait["504"]["content"]
    assert paths["/v1/projections/{name}/rebuild"]["post"]["responses"]["202"]
