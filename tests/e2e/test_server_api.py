"""HTTP API v1 as a client sees it: `ilji serve` in its own process, real sockets, real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.server_helpers import Server, append, category_name, running_server, stream_name


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with running_server(database_url, env={"ILJI_BODY_LIMIT": "65536"}) as s:
        yield s


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def problem_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


# -- appending ---------------------------------------------------------------------------


def test_append_returns_versions_positions_and_etag(client: httpx.Client) -> None:
    stream = stream_name()
    first = append(client, stream, "Opened", "Renamed", expected="no_stream")
    assert first.status_code == 201
    body = first.json()
    assert body["stream"] == stream
    assert (body["first_version"], body["last_version"]) == (1, 2)
    assert body["last_position"] == body["first_position"] + 1
    assert body["last_position"] < 2**53
    assert first.headers["etag"] == '"2"'
    second = append(client, stream, "Closed", expected=2)
    assert second.status_code == 201
    assert second.json()["first_version"] == 3
    assert second.json()["first_position"] > body["last_position"]


@pytest.mark.parametrize(
    ("prior", "expected", "ok"),
    [
        (0, "any", True),
        (2, "any", True),
        (0, "no_stream", True),
        (1, "no_stream", False),
        (0, "exists", False),
        (1, "exists", True),
        (0, 0, True),
        (2, 2, True),
        (2, 1, False),
        (1, 3, False),
    ],
)
def test_every_expected_version_form(client: httpx.Client, prior: int, expected: int | str, ok: bool) -> None:
    stream = stream_name()
    if prior:
        assert append(client, stream, *["Seed"] * prior).status_code == 201
    response = append(client, stream, "Next", expected=expected)
    if ok:
        assert response.status_code == 201, response.text
        assert response.json()["last_version"] == prior + 1
    else:
        problem = problem_of(response, 409)
        assert problem["expected"] == expected
        assert problem["actual"] == prior


def test_expected_version_defaults_to_any(client: httpx.Client) -> None:
    stream = stream_name()
    for version in (1, 2):
        response = client.post(f"/v1/streams/{stream}", json={"events": [{"type": "T", "data": {}}]})
        assert response.status_code == 201
        assert response.json()["last_version"] == version


def test_metadata_and_id_are_stored_and_data_defaults(client: httpx.Client) -> None:
    stream = stream_name()
    event_id = str(uuid.uuid4())
    body = {"events": [{"type": "T", "data": {"a": [1, "x"]}, "metadata": {"c": "k"}, "id": event_id}]}
    assert client.post(f"/v1/streams/{stream}", json=body).status_code == 201
    event = client.get(f"/v1/streams/{stream}").json()["events"][0]
    assert event["id"] == event_id
    assert (event["data"], event["metadata"]) == ({"a": [1, "x"]}, {"c": "k"})
    assert event["recorded_at"].endswith("Z")
    assert set(event) == {"id", "stream", "version", "position", "type", "data", "metadata", "recorded_at"}


def test_a_retried_batch_is_idempotent_and_other_id_reuse_conflicts(client: httpx.Client) -> None:
    stream = stream_name()
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    body = {"expected_version": "no_stream", "events": [{"type": "T", "data": {}, "id": i} for i in ids]}
    first = client.post(f"/v1/streams/{stream}", json=body)
    assert first.status_code == 201
    retry = client.post(f"/v1/streams/{stream}", json=body)
    assert retry.is_success
    assert retry.json() == first.json()
    assert client.get(f"/v1/streams/{stream}").json()["version"] == 2

    other = stream_name()
    elsewhere = client.post(f"/v1/streams/{other}", json={"events": [{"type": "T", "id": ids[0]}]})
    assert "already stored" in problem_of(elsewhere, 409)["detail"]
    reordered = {"events": [{"type": "T", "id": i} for i in reversed(ids)]}
    problem_of(client.post(f"/v1/streams/{stream}", json=reordered), 409)
    partial = {"events": [{"type": "T", "id": ids[0]}, {"type": "T", "id": str(uuid.uuid4())}]}
    problem_of(client.post(f"/v1/streams/{stream}", json=partial), 409)
    assert client.get(f"/v1/streams/{stream}").json()["version"] == 2
    assert client.get(f"/v1/streams/{other}").status_code == 404


def test_if_match_is_the_expected_version(client: httpx.Client) -> None:
    stream = stream_name()
    etag = append(client, stream, "A").headers["etag"]
    body = {"events": [{"type": "B", "data": {}}]}
    ok = client.post(f"/v1/streams/{stream}", json=body, headers={"If-Match": etag})
    assert ok.status_code == 201
    assert ok.headers["etag"] == '"2"'
    stale = client.post(f"/v1/streams/{stream}", json=body, headers={"If-Match": etag})
    # RFC 9110: a failed If-Match is 412 Precondition Failed, with the same details as a 409.
    problem = problem_of(stale, 412)
    assert (problem["expected"], problem["actual"]) == (1, 2)
    assert problem["type"] == "urn:ilji:problem:wrong-expected-version"
    assert problem["title"] == "Precondition Failed"
    missing = client.post(f"/v1/streams/{stream_name()}", json=body, headers={"If-Match": "*"})
    assert problem_of(missing, 412)["expected"] == "exists"
    # The same conflict stated in the body stays a 409.
    in_body = client.post(f"/v1/streams/{stream}", json={**body, "expected_version": 1})
    assert problem_of(in_body, 409)["expected"] == 1
    bare = client.post(f"/v1/streams/{stream}", json=body, headers={"If-Match": "2"})
    assert bare.status_code == 201
    assert client.get(f"/v1/streams/{stream}").headers["etag"] == '"3"'
    problem_of(client.post(f"/v1/streams/{stream}", json=body, headers={"If-Match": "latest"}), 400)


def test_an_append_is_atomic(client: httpx.Client) -> None:
    stream = stream_name()
    body = {"events": [{"type": "Good", "data": {}}, {"type": "Bad", "data": {"nul": "a\u0000b"}}]}
    problem_of(client.post(f"/v1/streams/{stream}", json=body), 400)
    assert client.get(f"/v1/streams/{stream}").status_code == 404


BAD_BODIES: list[tuple[str, Any, int]] = [
    ("bad JSON", b'{"events": [', 422),
    ("not an object", [1, 2], 422),
    ("no events key", {"expected_version": "any"}, 422),
    ("empty events", {"events": []}, 422),
    ("events not a list", {"events": {"type": "T"}}, 422),
    ("missing type", {"events": [{"data": {}}]}, 422),
    ("empty type", {"events": [{"type": "", "data": {}}]}, 422),
    ("type with a space", {"events": [{"type": "Two words", "data": {}}]}, 422),
    ("type not a string", {"events": [{"type": 7, "data": {}}]}, 422),
    ("data a list", {"events": [{"type": "T", "data": [1]}]}, 422),
    ("data a string", {"events": [{"type": "T", "data": "x"}]}, 422),
    ("data null", {"events": [{"type": "T", "data": None}]}, 422),
    ("metadata a number", {"events": [{"type": "T", "data": {}, "metadata": 3}]}, 422),
    ("bad uuid", {"events": [{"type": "T", "data": {}, "id": "not-a-uuid"}]}, 422),
    ("negative expected", {"expected_version": -1, "events": [{"type": "T"}]}, 422),
    ("unknown state", {"expected_version": "latest", "events": [{"type": "T"}]}, 422),
    ("float expected", {"expected_version": 1.5, "events": [{"type": "T"}]}, 422),
    ("bool expected", {"expected_version": True, "events": [{"type": "T"}]}, 422),
    ("string number expected", {"expected_version": "1", "events": [{"type": "T"}]}, 422),
    ("same id twice", {"events": [{"type": "T", "id": "6f1c2a3e-0000-4000-8000-000000000001"}] * 2}, 400),
    ("NaN in data", b'{"events": [{"type": "T", "data": {"x": NaN}}]}', 400),
    ("NUL in data", {"events": [{"type": "T", "data": {"x": "\u0000"}}]}, 400),
    ("huge integer", b'{"events": [{"type": "T", "data": {"x": 123456789012345678901234567890}}]}', 400),
]


@pytest.mark.parametrize(("case", "body", "status"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_malformed_appends_are_4xx_problems(client: httpx.Client, case: str, body: Any, status: int) -> None:
    stream = stream_name()
    if isinstance(body, bytes):
        response = client.post(
            f"/v1/streams/{stream}", content=body, headers={"Content-Type": "application/json"}
        )
    else:
        response = client.post(f"/v1/streams/{stream}", json=body)
    # The contract allows either; `status` is what this server answers today.
    assert response.status_code in (400, 422)
    problem_of(response, status)
    assert client.get(f"/v1/streams/{stream}").status_code == 404


@pytest.mark.parametrize("name", ["has%20space", "tab%09x", "%24system", "x" * 201])
def test_invalid_stream_names_are_refused(client: httpx.Client, name: str) -> None:
    response = client.post(f"/v1/streams/{name}", json={"events": [{"type": "T"}]})
    assert response.status_code in (400, 422)
    problem_of(response, response.status_code)


def test_a_body_over_the_limit_is_413(client: httpx.Client, server: Server) -> None:
    stream = stream_name()
    big = {"events": [{"type": "T", "data": {"x": "y" * 70_000}}]}
    problem_of(client.post(f"/v1/streams/{stream}", json=big), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        yield b'{"events": [{"type": "T", "data": {"x": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}}]}'

    chunked = client.post(
        f"/v1/streams/{stream}", content=chunks(), headers={"Content-Type": "application/json"}
    )
    problem_of(chunked, 413)
    assert client.get(f"/v1/streams/{stream}").status_code == 404
    assert client.get("/healthz").status_code == 200


# -- reading -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def five(server: Server) -> str:
    """A stream with five events, types E1..E5."""
    stream = stream_name("read")
    with server.client() as c:
        assert append(c, stream, "E1", "E2", "E3", "E4", "E5").status_code == 201
    return stream


@pytest.mark.parametrize(
    ("query", "versions"),
    [
        ("", [1, 2, 3, 4, 5]),
        ("?from_version=3", [3, 4, 5]),
        ("?from_version=2&limit=2", [2, 3]),
        ("?limit=1", [1]),
        ("?from_version=9", []),
        ("?direction=backward", [5, 4, 3, 2, 1]),
        ("?direction=backward&limit=2", [5, 4]),
        ("?direction=backward&from_version=3", [3, 2, 1]),
        ("?direction=forward&limit=1000", [1, 2, 3, 4, 5]),
    ],
)
def test_read_a_stream(client: httpx.Client, five: str, query: str, versions: list[int]) -> None:
    response = client.get(f"/v1/streams/{five}{query}")
    assert response.status_code == 200
    body = response.json()
    assert (body["stream"], body["version"]) == (five, 5)
    assert [e["version"] for e in body["events"]] == versions
    assert [e["type"] for e in body["events"]] == [f"E{v}" for v in versions]
    assert response.headers["etag"] == '"5"'
    positions = [e["position"] for e in sorted(body["events"], key=lambda e: e["version"])]
    assert positions == sorted(positions)


@pytest.mark.parametrize(
    "query",
    ["?limit=0", "?limit=1001", "?limit=x", "?from_version=-1", "?direction=sideways", "?from_version=a"],
)
def test_bad_read_parameters(client: httpx.Client, five: str, query: str) -> None:
    response = client.get(f"/v1/streams/{five}{query}")
    assert response.status_code in (400, 422)
    problem_of(response, response.status_code)


def test_a_stream_without_events_is_404(client: httpx.Client) -> None:
    problem = problem_of(client.get(f"/v1/streams/{stream_name()}"), 404)
    assert "no events" in problem["detail"]


def test_global_log_pages_with_next(client: httpx.Client) -> None:
    stream = stream_name()
    start = client.get("/v1/all", params={"limit": 1000})
    assert start.status_code == 200
    after = start.json()["next"]
    while True:  # skip whatever other tests appended
        page = client.get("/v1/all", params={"after": after, "limit": 1000}).json()
        if not page["events"]:
            break
        after = page["next"]
    assert page["next"] == after  # an empty page: caught up, next == after
    append(client, stream, "A", "B", "C")
    seen: list[dict[str, Any]] = []
    cursor = after
    for _ in range(10):
        page = client.get("/v1/all", params={"after": cursor, "limit": 2}).json()
        assert len(page["events"]) <= 2
        if not page["events"]:
            assert page["next"] == cursor
            break
        assert page["next"] == page["events"][-1]["position"]
        seen += page["events"]
        cursor = page["next"]
    mine = [e for e in seen if e["stream"] == stream]
    assert [e["type"] for e in mine] == ["A", "B", "C"]
    assert [e["position"] for e in seen] == sorted(e["position"] for e in seen)


def test_categories_hold_only_their_streams(client: httpx.Client) -> None:
    category = category_name()
    append(client, f"{category}-1", "A")
    append(client, f"{category}x-1", "Other")  # a longer name is another category
    append(client, category, "Bare")  # a stream without '-' is its own category
    append(client, f"{category}-2-b", "B")
    page = client.get(f"/v1/categories/{category}", params={"limit": 2}).json()
    assert [e["type"] for e in page["events"]] == ["A", "Bare"]
    rest = client.get(f"/v1/categories/{category}", params={"after": page["next"]}).json()
    assert [e["type"] for e in rest["events"]] == ["B"]
    empty = client.get(f"/v1/categories/{category}", params={"after": rest["next"]}).json()
    assert empty == {"events": [], "next": rest["next"]}


@pytest.mark.parametrize(
    "url",
    [
        "/v1/all?limit=0",
        "/v1/all?limit=1001",
        "/v1/all?after=-1",
        "/v1/all?after=x",
        "/v1/categories/a-b",
        "/v1/categories/ok?limit=0",
        "/v1/categories/ok?after=-5",
        "/v1/categories/has%20space",
    ],
)
def test_bad_log_parameters(client: httpx.Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code in (400, 422)
    problem_of(response, response.status_code)


# -- operations ----------------------------------------------------------------------------


def test_probes(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200


def test_metrics_count_requests_appends_and_conflicts(client: httpx.Client) -> None:
    stream = stream_name()
    append(client, stream, "A", "B")
    append(client, stream, "C", expected=0)
    text = client.get("/metrics").text
    for name in (
        'ilji_http_requests_total{method="POST",route="/v1/streams/{stream}",status="201"}',
        "ilji_http_request_duration_seconds_bucket",
        'ilji_appends_total{outcome="stored"}',
        "ilji_events_appended_total",
        'ilji_append_conflicts_total{reason="wrong-expected-version"}',
        "ilji_sse_connections",
        "ilji_db_pool_size",
        "ilji_db_requests_waiting",
        "ilji_oldest_transaction_age_seconds",
        'ilji_background_loop_runs_total{loop="database_monitor",outcome="ok"}',
        # Group commit: both appends went as groups of one (nothing else was in flight).
        'ilji_append_group_size_bucket{le="1.0"}',
        "ilji_append_group_wait_seconds_count",
    ):
        assert name in text, name


def test_openapi_and_docs(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    documented = {"/v1/streams/{stream}", "/v1/all", "/v1/categories/{category}", "/healthz", "/readyz"}
    assert documented | {"/metrics"} <= set(paths)
    post = paths["/v1/streams/{stream}"]["post"]
    assert {"201", "200", "400", "409", "412", "413", "422", "503"} <= set(post["responses"])
    assert "application/problem+json" in post["responses"]["409"]["content"]
    get = paths["/v1/streams/{stream}"]["get"]
    assert "text/event-stream" in get["responses"]["200"]["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_unknown_routes_are_problem_404(client: httpx.Client) -> None:
    problem_of(client.get("/v2/nothing"), 404)
    assert client.delete(f"/v1/streams/{stream_name()}").status_code == 405
