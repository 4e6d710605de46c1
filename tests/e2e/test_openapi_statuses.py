"""No route answers a status its OpenAPI operation does not declare, with tokens and rate limits on.

schemathesis (test_server_schemathesis.py) fuzzes a server without tokens; this test probes
every documented operation of a server with tokens, a rate limit and a small body limit
with the requests the middleware answers by itself: no token, a token of too small a role,
a body over the limit, a URL that is not UTF-8, a write from another site, and a client over
its rate. Every answer's status must be one the document declares for that operation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.server_helpers import TOKEN_SPEC, TOKENS, Server, running_server

pytestmark = pytest.mark.slow

BODY_LIMIT = 2048
SAMPLE = {"stream": "probe-1", "category": "probe", "name": "no-such-projection"}


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    env = {
        "ILJI_ACCESS_LOG": "false",
        "ILJI_API_TOKENS": TOKEN_SPEC,
        "ILJI_BODY_LIMIT": str(BODY_LIMIT),
        # Clients without a valid token get one request an hour; tokens are not limited here.
        "ILJI_RATE_LIMIT": "1/h",
        "ILJI_RATE_LIMIT_ROLES": "read=100000/s,write=100000/s,admin=100000/s",
    }
    with running_server(database_url, env=env) as s:
        yield s


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]


def _request(path: str, method: str, op: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    url = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m[1]], path)
    params = {p["name"]: 1 for p in op.get("parameters", []) if p["in"] == "query" and p.get("required")}
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example", {})
    kwargs: dict[str, Any] = {"params": params}
    if method != "get":
        kwargs["json"] = body
    return method.upper(), url, kwargs


def test_every_answer_is_declared(server: Server) -> None:
    admin, reader, anonymous = (
        server.client(TOKENS["admin"]),
        server.client(TOKENS["reader"]),
        server.client(),
    )
    doc = admin.get("/openapi.json").json()
    ops = _operations(doc)
    assert len(ops) >= 25
    seen: Counter[int] = Counter()
    undeclared: list[str] = []

    def check(op: dict[str, Any], what: str, response: httpx.Response) -> None:
        seen[response.status_code] += 1
        if str(response.status_code) not in op["responses"]:
            undeclared.append(f"{op['operationId']} ({what}): {response.status_code} {response.text[:120]}")

    for path, method, op in ops:
        verb, url, kwargs = _request(path, method, op)
        check(op, "admin", admin.request(verb, url, **kwargs))
        check(op, "reader", reader.request(verb, url, **kwargs))
        big = b"x" * (BODY_LIMIT + 1)
        check(op, "body over the limit", admin.request(verb, url, content=big))
        check(op, "URL not UTF-8", admin.request(verb, url + "?x=%FF"))
        if method != "get":
            other_site = {"Origin": "https://elsewhere.example"}
            check(op, "cross-site", admin.request(verb, url, headers=other_site, **kwargs))
    # Without a token: the first request may pass the rate limit (and get 401), the rest 429.
    for path, method, op in ops:
        verb, url, kwargs = _request(path, method, op)
        check(op, "no token", anonymous.request(verb, url, **kwargs))
        check(
            op,
            "wrong token",
            anonymous.request(verb, url, headers={"Authorization": "Bearer nope"}, **kwargs),
        )
    print("statuses seen:", dict(sorted(seen.items())))
    assert undeclared == [], "\n".join(undeclared)
    # The probe reached what it meant to: each of the middleware's answers happened.
    assert {200, 400, 403, 404, 413, 429} <= set(seen), seen
