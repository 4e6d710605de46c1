"""The OpenAPI document is one client generators can use as it is.

Stable operation ids (never FastAPI's `read_stream_v1_streams__stream__get`), one shared
problem schema, a description on every property and parameter, the bearer scheme, the
statuses every route can answer because of the middleware, and examples of the main
operations. tests/e2e/test_openapi_statuses.py checks the statuses against a real server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute

from ilji import examples
from ilji.server.factory import create_app
from ilji.server.openapi import OPERATION_IDS, PUBLIC_OPERATIONS, is_generated_id
from ilji.server.problem_docs import PROBLEM_SCHEMA
from ilji.settings import Settings

TOKENS = "r=read,w=write,a=admin"


def document(**settings: Any) -> dict[str, Any]:
    return create_app(Settings(**settings)).openapi()


@pytest.fixture(scope="module", params=["open", "tokens-and-rate-limit"])
def doc(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "open":
        return document()
    return document(api_tokens=TOKENS, rate_limit="50/s")


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def walk(node: Any, where: str = "#") -> Iterator[tuple[str, Any]]:
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{where}/{i}")


def test_operation_ids_are_meaningful_and_unique(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    defaults = [i for i in ids if is_generated_id(i)]
    assert defaults == [], f"FastAPI's default operation ids: {defaults}"
    assert all(re.fullmatch(r"[a-z][A-Za-z]+", i) for i in ids), ids
    assert len(ids) == len(set(ids))
    for name in ("appendToStream", "readStream", "readAll", "readCategory"):
        assert name in ids


def test_the_example_domains_routes_get_meaningful_unique_ids() -> None:
    app = create_app(Settings())
    for name in examples.NAMES:  # as `ilji serve --example NAME` mounts them
        app.include_router(examples.load(name, "http").router(None, None))
    ids = [op["operationId"] for _, _, op in operations(app.openapi())]
    assert [i for i in ids if is_generated_id(i)] == []
    assert len(ids) == len(set(ids)), sorted(ids)
    assert {"conferenceReserve", "shipsCargoHistory", "ordersShow", "conferenceShow"} <= set(ids)


def test_every_documented_route_has_an_id_from_the_table() -> None:
    # A new route must get its id on purpose: the camelCase fallback is for example domains.
    app = create_app(Settings())
    names = {r.name for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema}
    assert names - set(OPERATION_IDS) == set()


def test_the_problem_schema_is_one_shared_component(doc: dict[str, Any]) -> None:
    assert doc["components"]["schemas"]["Problem"] == PROBLEM_SCHEMA
    inlined = [
        where
        for where, node in walk(doc["paths"])
        if isinstance(node, dict)
        and {"type", "title", "status", "detail"} <= node.get("properties", {}).keys()
    ]
    assert inlined == [], f"problem schema inlined at {inlined[:5]}"
    problem_contents = [
        (where, node["application/problem+json"]["schema"])
        for where, node in walk(doc["paths"])
        if isinstance(node, dict) and "application/problem+json" in node
    ]
    assert len(problem_contents) > 100
    wrong = [w for w, schema in problem_contents if schema != {"$ref": "#/components/schemas/Problem"}]
    assert wrong == []


def test_every_property_and_parameter_is_described(doc: dict[str, Any]) -> None:
    missing = [
        f"{name}.{prop}"
        for name, schema in doc["components"]["schemas"].items()
        for prop, spec in schema.get("properties", {}).items()
        if not spec.get("description")
    ]
    missing += [
        f"{op['operationId']}({p['name']})"
        for _, _, op in operations(doc)
        for p in op.get("parameters", [])
        if not p.get("description")
    ]
    assert missing == []


def test_statuses_of_the_middleware_are_declared_everywhere() -> None:
    doc = document(api_tokens=TOKENS, rate_limit="50/s")
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert doc["security"] == [{"bearer": []}]
    for _path, method, op in operations(doc):
        declared = set(op["responses"])
        assert {"400", "413"} <= declared, op["operationId"]
        if method != "get":
            assert {"403", "408"} <= declared, op["operationId"]
        if op["operationId"] in PUBLIC_OPERATIONS:
            assert op["security"] == []
            assert "429" not in declared and "401" not in declared
        else:
            assert {"401", "403", "429"} <= declared, op["operationId"]
    open_doc = document()
    assert "security" not in open_doc
    assert all("401" not in op["responses"] for _, _, op in operations(open_doc))
    assert all("429" not in op["responses"] for _, _, op in operations(open_doc))


def test_main_operations_have_examples_and_sse_is_described(doc: dict[str, Any]) -> None:
    ops = {op["operationId"]: op for _, _, op in operations(doc)}
    append = ops["appendToStream"]
    assert append["requestBody"]["content"]["application/json"]["example"]["events"]
    assert append["responses"]["201"]["content"]["application/json"]["example"]["last_version"] == 1
    assert append["responses"]["409"]["content"]["application/problem+json"]["example"]["actual"] == 1
    for name in ("readStream", "readAll", "readCategory"):
        content = ops[name]["responses"]["200"]["content"]
        assert content["application/json"]["example"]["events"]
        sse = content["text/event-stream"]
        assert "Last-Event-ID" in sse["schema"]["description"]
        assert sse["example"].startswith(": heartbeat\n\nid: ")
