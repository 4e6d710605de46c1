"""POST /v1/append: several streams in one transaction over HTTP, problems naming the part."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.server_helpers import Server, running_server, stream_name


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with running_server(database_url) as s:
        yield s


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def part(stream: str, expected: int | str, *types: str) -> dict[str, Any]:
    return {
        "stream": stream,
        "expected_version": expected,
        "events": [{"id": str(uuid.uuid4()), "type": t, "data": {"t": t}} for t in types],
    }


def test_parts_are_stored_together_and_a_resend_answers_200(client: httpx.Client) -> None:
    a, b = stream_name(), stream_name()
    body = {"parts": [part(a, "no_stream", "Debited"), part(b, 0, "Credited", "Noted")]}
    first = client.post("/v1/append", json=body)
    assert first.status_code == 201, first.text
    results = first.json()["parts"]
    assert [r["stream"] for r in results] == [a, b]
    assert results[1]["last_version"] == 2
    assert results[1]["first_position"] > results[0]["last_position"]
    again = client.post("/v1/append", json=body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert client.get(f"/v1/streams/{b}").json()["version"] == 2


def test_a_conflict_names_the_part_with_expected_and_actual(client: httpx.Client) -> None:
    a, b = stream_name(), stream_name()
    assert (
        client.post(f"/v1/streams/{b}", json={"events": [{"type": "Opened", "data": {}}]}).status_code == 201
    )
    response = client.post("/v1/append", json={"parts": [part(a, 0, "Debited"), part(b, 0, "Credited")]})
    assert response.status_code == 409, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (problem["part"], problem["stream"], problem["expected"], problem["actual"]) == (1, b, 0, 1)
    assert client.get(f"/v1/streams/{a}").status_code == 404  # nothing of part 0 was stored


def test_bad_input_names_the_part(client: httpx.Client) -> None:
    a = stream_name()
    response = client.post("/v1/append", json={"parts": [part(a, 0, "Debited"), part(a, 0, "Credited")]})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "parts[1].stream"
    reused = part(stream_name(), "any", "X")
    response = client.post("/v1/append", json={"parts": [part(a, 0, "Debited"), reused]})
    assert response.status_code == 201
    response = client.post("/v1/append", json={"parts": [part(stream_name(), 0, "Y"), reused]})
    assert response.status_code == 409
    assert response.json()["part"] == 1
    assert response.json()["type"] == "urn:ilji:problem:duplicate-event-id"
    response = client.post("/v1/append", json={"parts": []})
    assert response.status_code == 422


@pytest.mark.parametrize("route", ["/openapi.json"])
def test_the_route_is_documented(client: httpx.Client, route: str) -> None:
    document = client.get(route).json()
    operation = document["paths"]["/v1/append"]["post"]
    assert operation["operationId"] == "appendToStreams"
    assert "example" in operation["requestBody"]["content"]["application/json"]
