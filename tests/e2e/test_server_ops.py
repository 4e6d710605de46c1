"""Operating the server: JSON logs, several worker processes, configuration from the environment."""

from __future__ import annotations

import json
import time

import httpx

from tests.e2e.server_helpers import append, running_server, stream_name
from tests.position_limit import past_the_position_limit


def test_json_logs_are_one_object_a_line(database_url: str) -> None:
    with running_server(database_url, env={"ILJI_LOG_FORMAT": "json"}) as server, server.client() as client:
        assert append(client, stream_name(), "A").status_code == 201
        assert client.get("/v1/all?limit=0").status_code == 422
    lines = [line for line in server.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line, uvicorn's included
    requests = [e for e in entries if e["message"] == "request"]
    assert {(e["method"], e["route"], e["status"]) for e in requests} >= {
        ("POST", "/v1/streams/{stream}", 201),
        ("GET", "/v1/all", 422),
    }
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    assert not any("color_message" in e for e in entries)


def test_several_workers_serve_and_stop_cleanly(database_url: str) -> None:
    with running_server(database_url, args=["--workers", "2"]) as server, server.client() as client:
        stream = stream_name()
        for expected in range(10):  # connections spread over both workers; versions stay exact
            with server.client() as fresh:
                response = append(fresh, stream, "Tick", expected=expected)
            assert response.status_code == 201, response.text
        assert client.get(f"/v1/streams/{stream}").json()["version"] == 10
        assert client.get("/readyz").status_code == 200


def test_the_position_limit_is_a_clear_problem_without_row_data(database_url: str) -> None:
    secret = "alice@example.com"
    with (
        past_the_position_limit(database_url) as category,
        running_server(database_url, env={"ILJI_MONITOR_INTERVAL": "0.2"}) as server,
        server.client() as client,
    ):
        response = client.post(
            f"/v1/streams/{category}-1", json={"events": [{"type": "Registered", "data": {"email": secret}}]}
        )
        assert response.status_code == 507, response.text
        problem = response.json()
        assert problem["type"] == "urn:ilji:problem:position-limit"
        assert "2^41" in problem["detail"]
        assert secret not in response.text
        assert "Failing row" not in response.text
        assert client.get(f"/v1/streams/{category}-1").status_code == 404
        assert 0 < transaction_ids_left(client) < 2**41
    assert secret not in server.log()
    assert "Failing row" not in server.log()


def transaction_ids_left(client: httpx.Client) -> float:
    """`ilji_transaction_ids_left` from /metrics, once the monitor loop has set it."""
    for _ in range(100):
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("ilji_transaction_ids_left ") and float(line.split()[1]) > 0:
                return float(line.split()[1])
        time.sleep(0.1)
    raise AssertionError("the monitor loop never set ilji_transaction_ids_left")
