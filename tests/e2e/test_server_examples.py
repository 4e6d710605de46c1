"""`ilji serve --example NAME`: the example domains' routes on the real server."""

from __future__ import annotations

import uuid

from tests.e2e.server_helpers import running_server


def test_the_conference_example_is_served_and_guarded(database_url: str) -> None:
    conference = f"conf{uuid.uuid4().hex[:8]}"
    with running_server(database_url, args=["--example", "conference"]) as server, server.client() as http:
        created = http.put(
            f"/examples/conference/conferences/{conference}", json={"name": "PyCon", "seats": 2}
        )
        assert created.status_code in (200, 201), created.text
        for i in range(2):
            reserved = http.post(
                f"/examples/conference/conferences/{conference}/reservations",
                json={"reservation_id": f"r{i}", "quantity": 1},
            )
            assert reserved.status_code in (200, 201), reserved.text
        full = http.post(
            f"/examples/conference/conferences/{conference}/reservations",
            json={"reservation_id": "r9", "quantity": 1},
        )
        assert full.status_code == 409, full.text
        assert full.json()["type"].startswith("urn:ilji:problem:"), full.text
        assert full.json()["type"] != "urn:ilji:problem:conflict", "the rule's code is kept"
        state = http.get(f"/examples/conference/conferences/{conference}")
        assert state.status_code == 200
        assert "/examples/conference/conferences/{conference_id}" in http.get("/openapi.json").json()["paths"]
        # the example's events are ordinary events of the store, in the `conference` category
        page = http.get("/v1/categories/conference", params={"limit": 1000}).json()
        mine = [e["type"] for e in page["events"] if conference in e["stream"]]
        assert mine[0] == "ConferenceCreated"
        assert len(mine) == 3


def test_an_unknown_example_is_refused(database_url: str) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ilji.cli", "serve", "--database-url", database_url, "--example", "bank"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "conference, ships, orders" in result.stderr
