"""Bearer tokens and roles on every route, the probes' exemption, and the refusal to bind publicly."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server_helpers import (
    ILJI,
    TOKEN_SPEC,
    TOKENS,
    Server,
    append,
    free_port,
    running_server,
    stream_name,
)

ROLES = ["reader", "writer", "admin"]

# (method, path, the weakest role that may call it)
ROUTES = [
    ("POST", "/v1/streams/auth-1", "writer"),
    ("GET", "/v1/streams/auth-1", "reader"),
    ("GET", "/v1/all", "reader"),
    ("GET", "/v1/categories/auth", "reader"),
    ("GET", "/metrics", "reader"),
    ("GET", "/openapi.json", "reader"),
    ("GET", "/docs", "reader"),
]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with running_server(database_url, env={"ILJI_API_TOKENS": TOKEN_SPEC}) as s:
        yield s


def call(server: Server, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = {"events": [{"type": "T", "data": {}}]} if method == "POST" else None
    with httpx.Client(base_url=server.url, timeout=10) as c:
        return c.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "needed"), ROUTES)
def test_every_route_checks_tokens_and_roles(server: Server, method: str, path: str, needed: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Basic {TOKENS['admin']}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {TOKENS['admin']}x"},
    ):
        response = call(server, method, path, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"].startswith("application/problem+json")
    for role in ROLES:
        response = call(server, method, path, {"Authorization": f"Bearer {TOKENS[role]}"})
        if ROLES.index(role) < ROLES.index(needed):
            assert response.status_code == 403, (role, response.text)
            assert response.json()["status"] == 403
        else:
            assert response.status_code < 400, (role, response.text)


def test_sse_needs_a_token_too(server: Server) -> None:
    sse = {"Accept": "text/event-stream"}
    assert call(server, "GET", "/v1/all", sse).status_code == 401
    with (
        httpx.Client(base_url=server.url, timeout=10) as c,
        c.stream("GET", "/v1/all", headers={**sse, "Authorization": f"Bearer {TOKENS['reader']}"}) as r,
    ):
        assert r.status_code == 200


def test_probes_need_no_token(server: Server) -> None:
    assert call(server, "GET", "/healthz", {}).status_code == 200
    assert call(server, "GET", "/readyz", {}).status_code == 200


def test_tokens_never_reach_the_log(server: Server) -> None:
    with server.client(TOKENS["writer"]) as c:
        assert append(c, stream_name(), "A").status_code == 201
    call(server, "GET", "/v1/all", {"Authorization": "Bearer wrong-secret-zz"})
    log = server.log()
    assert "request" in log
    for secret in [*TOKENS.values(), "wrong-secret-zz"]:
        assert secret not in log


def test_the_openapi_document_declares_bearer_auth(server: Server) -> None:
    spec = call(server, "GET", "/openapi.json", {"Authorization": f"Bearer {TOKENS['reader']}"}).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    responses = spec["paths"]["/v1/streams/{stream}"]["post"]["responses"]
    assert {"401", "403"} <= set(responses)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_refuses_to_bind_publicly_without_tokens(database_url: str, host: str) -> None:
    result = subprocess.run(
        [*ILJI, "serve", "--host", host, "--port", str(free_port()), "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode != 0
    assert "tokens" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_binds_publicly_with_tokens(database_url: str) -> None:
    env = {"ILJI_API_TOKENS": TOKEN_SPEC, "ILJI_HOST": "0.0.0.0"}
    with running_server(database_url, env=env) as server:
        assert call(server, "GET", "/healthz", {}).status_code == 200


def test_malformed_token_settings_are_refused_without_echoing_them(database_url: str) -> None:
    result = subprocess.run(
        [*ILJI, "serve", "--port", str(free_port()), "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "ILJI_API_TOKENS": "topsecret=superuser"},
        check=False,
    )
    assert result.returncode != 0
    assert "role" in result.stderr
    assert "topsecret" not in result.stderr
