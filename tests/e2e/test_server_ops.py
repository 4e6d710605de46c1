"""Operating the server: JSON logs, several worker processes, configuration from the environment."""

from __future__ import annotations

import json

from tests.e2e.server_helpers import append, running_server, stream_name


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
