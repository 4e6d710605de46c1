"""Stream lifecycle and the audit log over HTTP and the CLI: a real `ilji serve`, real PostgreSQL."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ilji import PostgresEventStore
from ilji.projections import Projection, sql
from ilji.projections.worker import register
from tests.e2e.server_helpers import ILJI, TOKEN_SPEC, TOKENS, Server, append, category_name, running_server

ADMIN_FINGERPRINT = hashlib.sha256(TOKENS["admin"].encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    env = {"ILJI_API_TOKENS": TOKEN_SPEC, "ILJI_ACCESS_LOG": "false"}
    with running_server(database_url, env=env) as s:
        yield s


@pytest.fixture
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client(TOKENS["admin"]) as client:
        yield client


@pytest.fixture
def writer(server: Server) -> Iterator[httpx.Client]:
    with server.client(TOKENS["writer"]) as client:
        yield client


def new_stream(writer: httpx.Client, events: int = 3) -> str:
    stream = f"{category_name()}-1"
    assert append(writer, stream, *(["Happened"] * events)).status_code == 201
    return stream


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, Any] = response.json()
    return body


def audit(admin: httpx.Client, target: str) -> list[dict[str, Any]]:
    """The audit records about `target`, read the way an operator would."""
    page = admin.get("/v1/streams/$audit", params={"limit": 1000, "direction": "backward"})
    if page.status_code == 404:  # no admin action yet
        return []
    assert page.status_code == 200, page.text
    assert TOKENS["admin"] not in page.text  # a fingerprint, never the token
    found = [{"type": e["type"], **e["data"]} for e in page.json()["events"] if e["data"]["target"] == target]
    return found[::-1]


def versions(client: httpx.Client, stream: str) -> list[int]:
    response = client.get(f"/v1/streams/{stream}")
    assert response.status_code == 200, response.text
    return [e["version"] for e in response.json()["events"]]


def test_lifecycle_routes_and_ilji_streams_need_an_admin_token(server: Server, writer: httpx.Client) -> None:
    stream = new_stream(writer)
    cat = stream.split("-")[0]
    routes = [
        ("GET", f"/v1/lifecycle/streams/{stream}", None),
        ("POST", f"/v1/lifecycle/delete/{stream}", None),
        ("POST", f"/v1/lifecycle/restore/{stream}", None),
        ("POST", f"/v1/lifecycle/truncate/{stream}", {"before": 2}),
        ("GET", f"/v1/lifecycle/retention/{cat}", None),
        ("PUT", f"/v1/lifecycle/retention/{cat}", {"max_count": 1}),
        ("DELETE", f"/v1/lifecycle/retention/{cat}", None),
        ("GET", "/v1/streams/$audit", None),
        ("GET", "/v1/categories/$lifecycle", None),
    ]
    for method, path, body in routes:
        with server.client() as anonymous:
            problem(anonymous.request(method, path, json=body), 401)
        for role in ("reader", "writer"):
            with server.client(TOKENS[role]) as client:
                assert "admin" in problem(client.request(method, path, json=body), 403)["detail"]
    # Nothing was changed by the refused requests.
    assert versions(writer, stream) == [1, 2, 3]
    with server.client(TOKENS["admin"]) as admin:
        assert audit(admin, stream) == []


def test_soft_delete_restore_and_truncate(admin: httpx.Client, writer: httpx.Client) -> None:
    stream = new_stream(writer)
    deleted = admin.post(f"/v1/lifecycle/delete/{stream}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() | {"deleted_at": None} == {
        "stream": stream,
        "version": 3,
        "deleted": True,
        "deleted_version": 3,
        "deleted_at": None,
        "truncate_before": 0,
        "first_visible_version": 4,
    }
    assert deleted.json()["deleted_at"].endswith("Z")

    gone = problem(writer.get(f"/v1/streams/{stream}"), 404)
    assert gone["type"] == "urn:ilji:problem:stream-deleted"
    assert (gone["stream"], gone["deleted_version"]) == (stream, 3)
    assert "restore" in gone["detail"]
    everything = writer.get("/v1/all", params={"limit": 1000}).json()["events"]
    assert stream not in {e["stream"] for e in everything}
    assert writer.get(f"/v1/categories/{stream.split('-')[0]}").json()["events"] == []
    assert admin.get(f"/v1/lifecycle/streams/{stream}").json()["deleted"] is True

    assert admin.post(f"/v1/lifecycle/restore/{stream}").json()["deleted"] is False
    assert versions(writer, stream) == [1, 2, 3]

    truncated = admin.post(f"/v1/lifecycle/truncate/{stream}", json={"before": 3})
    assert truncated.json()["first_visible_version"] == 3
    response = writer.get(f"/v1/streams/{stream}")
    assert [e["version"] for e in response.json()["events"]] == [3]
    assert response.headers["etag"] == '"3"'  # the version counts hidden events

    records = audit(admin, stream)
    assert [(r["action"], r["outcome"]) for r in records] == [
        ("stream.delete", "ok"),
        ("stream.restore", "ok"),
        ("stream.truncate", "ok"),
    ]
    assert records[2]["parameters"] == {"before": 3}
    assert records[0]["actor"] == {"via": "http", "role": "admin", "token_fingerprint": ADMIN_FINGERPRINT}
    changes = admin.get("/v1/categories/$lifecycle", params={"limit": 1000}).json()["events"]
    assert [e["type"] for e in changes if e["data"].get("stream") == stream] == [
        "StreamDeleted",
        "StreamRestored",
        "StreamTruncated",
    ]


def test_an_append_to_a_deleted_stream_brings_it_back_with_the_new_events(
    admin: httpx.Client, writer: httpx.Client
) -> None:
    stream = new_stream(writer, 2)
    admin.post(f"/v1/lifecycle/delete/{stream}")
    again = append(writer, stream, "Reopened", expected=2)
    assert again.status_code == 201, again.text
    assert again.json()["last_version"] == 3
    assert versions(writer, stream) == [3]


def test_bad_input_is_a_4xx_problem_and_changes_nothing(admin: httpx.Client, writer: httpx.Client) -> None:
    stream = new_stream(writer)
    cat = stream.split("-")[0]
    truncate = f"/v1/lifecycle/truncate/{stream}"
    retention = f"/v1/lifecycle/retention/{cat}"
    for body in ({"before": 0}, {"before": "2"}, {"before": 2.5}, {"before": None}, {}, [1]):
        problem(admin.post(truncate, json=body), 422)
    problem(admin.post(truncate, content=b"{not json", headers={"content-type": "application/json"}), 422)
    too_far = problem(admin.post(truncate, json={"before": 5}), 400)
    assert too_far["detail"] == "before: must be at most the stream's version + 1 (4), got 5"
    for body in ({"max_count": 0}, {"max_age_seconds": -1}, {"max_count": "3"}, {"max_age_seconds": 10**12}):
        problem(admin.put(retention, json=body), 422)
    assert problem(admin.put(retention, json={}), 400)["errors"][0]["field"] == "retention"
    problem(admin.put("/v1/lifecycle/retention/a-b", json={"max_count": 1}), 422)
    problem(admin.post("/v1/lifecycle/delete/$audit"), 422)
    problem(admin.get("/v1/lifecycle/retention/$audit"), 400)
    missing = f"{cat}-missing"
    assert problem(admin.post(f"/v1/lifecycle/delete/{missing}"), 404)["type"].endswith("stream-not-found")
    problem(admin.get(f"/v1/lifecycle/streams/{missing}"), 404)

    assert versions(writer, stream) == [1, 2, 3]
    assert admin.get(retention).json() == {"category": cat, "max_age_seconds": None, "max_count": None}
    # Refused before reaching the store (schema) is not an action; refused by the store is.
    assert [(r["type"], r["outcome"]) for r in audit(admin, stream)] == [
        ("AdminActionFailed", "validation-error")
    ]
    assert [r["outcome"] for r in audit(admin, missing)] == ["stream-not-found"]


def test_retention_per_category(admin: httpx.Client, writer: httpx.Client) -> None:
    stream = new_stream(writer, 4)
    cat = stream.split("-")[0]
    assert append(writer, f"{cat}-2", "Other").status_code == 201
    url = f"/v1/lifecycle/retention/{cat}"
    rule = admin.put(url, json={"max_count": 2, "max_age_seconds": 86_400})
    assert rule.status_code == 200, rule.text
    assert rule.json() == {"category": cat, "max_age_seconds": 86_400, "max_count": 2}
    assert admin.get(url).json() == rule.json()
    assert versions(writer, stream) == [3, 4]
    in_category = writer.get(f"/v1/categories/{cat}").json()["events"]
    assert [(e["stream"], e["version"]) for e in in_category] == [(stream, 3), (stream, 4), (f"{cat}-2", 1)]
    cleared = admin.delete(url)
    assert cleared.json() == {"category": cat, "max_age_seconds": None, "max_count": None}
    assert versions(writer, stream) == [1, 2, 3, 4]
    assert [r["action"] for r in audit(admin, cat)] == ["retention.set", "retention.clear"]


class Audited(Projection):
    """A projection that only needs to be registered: these tests never run a worker."""

    name = f"audited_{uuid.uuid4().hex[:8]}"


def test_projection_actions_are_audited_over_http_and_from_the_cli(
    database_url: str, admin: httpx.Client
) -> None:
    async def declare() -> None:
        async with await PostgresEventStore.open(database_url) as store:
            await register(store, Audited())
            async with store.database.connection() as conn:  # what a worker does when it starts
                params = {"name": Audited.name, "version": 1, "partitions": 1, "code_version": 1}
                await conn.execute(sql.load("declare_version"), params)
                await conn.execute(sql.load("ensure_partitions"), params)

    asyncio.run(declare())
    name = Audited.name
    assert admin.post(f"/v1/projections/{name}/pause").status_code == 200
    assert admin.post(f"/v1/projections/{name}/resume").status_code == 200
    assert admin.post(f"/v1/projections/{name}/rebuild").status_code == 202
    assert admin.post(f"/v1/projections/{name}/parked/replay", json={}).status_code == 202
    problem(admin.post("/v1/projections/no_such_projection/pause"), 404)
    cli = subprocess.run(
        [*ILJI, "projections", "pause", name, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr

    records = audit(admin, name)
    assert [(r["action"], r["outcome"]) for r in records] == [
        ("projection.pause", "ok"),
        ("projection.resume", "ok"),
        ("projection.rebuild", "ok"),
        ("projection.replay_parked", "unchanged"),  # nothing was parked
        ("projection.pause", "ok"),
    ]
    assert {r["actor"]["token_fingerprint"] for r in records[:4]} == {ADMIN_FINGERPRINT}
    assert records[4]["actor"] == {"via": "cli", "user": getpass.getuser()}
    [failed] = audit(admin, "no_such_projection")
    assert (failed["type"], failed["outcome"]) == ("AdminActionFailed", "projection-not-found")


def test_ilji_streams_commands(database_url: str, admin: httpx.Client, writer: httpx.Client) -> None:
    stream = new_stream(writer)

    def ilji(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ILJI, *args, "--database-url", database_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    deleted = ilji("streams", "delete", stream, "--json")
    assert deleted.returncode == 0, deleted.stderr
    assert '"deleted":true' in deleted.stdout
    read = ilji("read", stream)
    assert read.returncode == 4 and "deleted at version 3" in read.stderr
    refused = ilji("streams", "truncate", stream, "--before", "9")
    assert refused.returncode == 2 and "at most the stream's version + 1" in refused.stderr
    assert [(r["action"], r["outcome"], r["actor"]["via"]) for r in audit(admin, stream)] == [
        ("stream.delete", "ok", "cli"),
        ("stream.truncate", "validation-error", "cli"),
    ]
    scavenged = ilji("streams", "scavenge", "--batch", "500")
    assert scavenged.returncode == 0, scavenged.stderr
    assert re.search(r"removed [\d,]+ hidden row\(s\)", scavenged.stdout), scavenged.stdout
    assert audit(admin, "ilji.events")[-1]["actor"]["via"] == "cli"
    restored = admin.post(f"/v1/lifecycle/restore/{stream}").json()
    assert restored["version"] == 3  # the newest row stayed, so the version did too
    assert versions(writer, stream) == [3]


def test_names_with_slashes_are_names(admin: httpx.Client, writer: httpx.Client) -> None:
    stream = f"{category_name()}-a/restore"
    assert append(writer, stream, "Happened").status_code == 201
    deleted = admin.post(f"/v1/lifecycle/delete/{stream}")
    assert deleted.status_code == 200 and deleted.json()["stream"] == stream
    problem(writer.get(f"/v1/streams/{stream}"), 404)
