"""The OpenAPI document, finished for client generators: one place for what every route shares.

FastAPI builds the document from the routes; `finish` then adds what no single route knows:

- stable `operationId`s from one table (`OPERATION_IDS`), never FastAPI's `read_stream_v1_…_get`;
- the bearer security scheme, and `security: []` on the probes that need no token;
- the statuses the middleware can answer on any route (a bad URL, a body over the limit, a
  cross-site write, a missing token, a rate limit), so no route answers a status it does
  not declare;
- one shared `Problem` schema (`problem_docs.responses` refers to it);
- examples of the main operations and the format of the SSE feeds.

The tests in tests/unit/test_openapi_document.py and tests/e2e/test_openapi_statuses.py
hold the document to this.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from fastapi import APIRouter, params
from fastapi.routing import APIRoute

from ilji.server.problem_docs import AUTH_CODES, GENERAL, PROBLEM_COMPONENT, PROBLEM_SCHEMA, responses
from ilji.server.ratelimit import EXEMPT_PATHS

#: Each route's operation id, by the name of its handler. Client generators turn these into
#: method names (`client.readStream(...)`, `read_stream.sync(...)`), so they are part of the
#: API contract: rename a handler freely, never an id.
OPERATION_IDS: dict[str, str] = {
    "append": "appendToStream",
    "append_streams": "appendToStreams",
    "read_stream": "readStream",
    "read_all": "readAll",
    "read_category": "readCategory",
    "healthz": "checkLiveness",
    "readyz": "checkReadiness",
    "metrics": "getMetrics",
    "list_projections": "listProjections",
    "get_projection": "getProjection",
    "parked": "listParkedEvents",
    "wait": "waitForProjection",
    "pause": "pauseProjection",
    "resume": "resumeProjection",
    "rebuild": "rebuildProjection",
    "replay": "replayParkedEvents",
    "get_stream": "getStreamLifecycle",
    "delete_stream": "deleteStream",
    "restore_stream": "restoreStream",
    "truncate_stream": "truncateStream",
    "get_retention": "getRetention",
    "put_retention": "setRetention",
    "delete_retention": "deleteRetention",
    "list_streams": "listStreams",
    "stats": "getStats",
    "views": "listViews",
    "states": "getStateHistory",
    "whoami": "whoAmI",
}

#: Operations anyone may call, token or not (orchestrators' probes).
PUBLIC_OPERATIONS = frozenset({"checkLiveness", "checkReadiness"})


_WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def operation_id(name: str) -> str:
    """The operation id of the handler called `name`, from the table."""
    return OPERATION_IDS[name]


def route_operation_id(route: APIRoute) -> str:
    """FastAPI's `generate_unique_id_function`: the id from the table.

    The example domains' routes (`/examples/<domain>/…`, mounted by `ilji serve --example`)
    are not in the table: theirs is the domain and the handler's name in camelCase
    (`conferenceReserve`), since two domains may both have a `show`.
    """
    if route.name in OPERATION_IDS:
        return OPERATION_IDS[route.name]
    parts = [p for p in route.path.split("/") if p and not p.startswith("{")]
    domain = parts[1] if len(parts) > 1 and parts[0] == "examples" else ""
    return _camel(f"{domain}_{route.name}" if domain else route.name)


def api_router(
    *,
    tags: list[str] | None = None,
    dependencies: list[params.Depends] | None = None,
    include_in_schema: bool = True,
) -> APIRouter:
    """A router of the server's routes: their operation ids come from `OPERATION_IDS`.

    The app factory puts its routes straight onto the app's router (see `factory.create_app`),
    so the id function has to be the router's own, not only the app's.
    """
    return APIRouter(
        tags=list(tags or []),
        dependencies=dependencies,
        include_in_schema=include_in_schema,
        generate_unique_id_function=route_operation_id,
    )


_EVENT_EXAMPLE = {
    "id": "0190f3a2-7c1e-7d3b-9a4e-5f6a7b8c9d0e",
    "stream": "order-42",
    "version": 1,
    "position": 1207,
    "type": "OrderPlaced",
    "data": {"sku": "tea-01", "quantity": 2},
    "metadata": {"correlation_id": "c-77"},
    "recorded_at": "2026-03-01T09:30:00.123456Z",
}

#: Example bodies by operation id and place ("request" or a status code).
EXAMPLES: dict[str, dict[str, Any]] = {
    "appendToStream": {
        "request": {
            "expected_version": 0,
            "events": [
                {
                    "id": _EVENT_EXAMPLE["id"],
                    "type": "OrderPlaced",
                    "data": _EVENT_EXAMPLE["data"],
                    "metadata": _EVENT_EXAMPLE["metadata"],
                }
            ],
        },
        "201": {
            "stream": "order-42",
            "first_version": 1,
            "last_version": 1,
            "first_position": 1207,
            "last_position": 1207,
        },
        "409": {
            "type": "urn:ilji:problem:wrong-expected-version",
            "title": "Conflict",
            "status": 409,
            "detail": "stream order-42 is at version 1, expected 0",
            "expected": 0,
            "actual": 1,
        },
    },
    "appendToStreams": {
        "request": {
            "parts": [
                {
                    "stream": "account-7",
                    "expected_version": 3,
                    "events": [{"type": "Debited", "data": {"amount": 25, "transfer": "t-9"}}],
                },
                {
                    "stream": "account-8",
                    "expected_version": 1,
                    "events": [{"type": "Credited", "data": {"amount": 25, "transfer": "t-9"}}],
                },
            ]
        },
        "201": {
            "parts": [
                {
                    "stream": "account-7",
                    "first_version": 4,
                    "last_version": 4,
                    "first_position": 4096000,
                    "last_position": 4096000,
                },
                {
                    "stream": "account-8",
                    "first_version": 2,
                    "last_version": 2,
                    "first_position": 4096002,
                    "last_position": 4096002,
                },
            ]
        },
        "409": {
            "type": "urn:ilji:problem:wrong-expected-version",
            "title": "Conflict",
            "status": 409,
            "detail": "parts[1]: stream 'account-8': expected version 1, but the stream is at version 2",
            "part": 1,
            "stream": "account-8",
            "expected": 1,
            "actual": 2,
        },
    },
    "readStream": {"200": {"stream": "order-42", "version": 1, "events": [_EVENT_EXAMPLE]}},
    "readAll": {"200": {"events": [_EVENT_EXAMPLE], "next": 1207}},
    "readCategory": {"200": {"events": [_EVENT_EXAMPLE], "next": 1207}},
}

#: The SSE routes: what their `text/event-stream` answer looks like.
SSE_OPERATIONS = {"readStream": "version", "readAll": "position", "readCategory": "position"}

_SSE_FORMAT = (
    "Server-Sent Events, one message per event: `id:` is the event's {unit} (send it back as "
    "`Last-Event-ID` to resume after it), `event:` its type and `data:` the event object as JSON "
    "(the shape of `EventOut`). Lines starting with `:` are heartbeats. The feed stays open; it "
    "ends when the server shuts down, and a client reconnects with `Last-Event-ID`."
)


def _sse_example(unit: str) -> str:
    ident = _EVENT_EXAMPLE[unit]
    return f": heartbeat\n\nid: {ident}\nevent: OrderPlaced\ndata: {json.dumps(_EVENT_EXAMPLE)}\n\n"


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema.get("paths", {}).items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch", "head", "options"}
    ]


def _declare(operation: dict[str, Any], *codes: int) -> None:
    declared = operation.setdefault("responses", {})
    for code, doc in responses(GENERAL, *codes).items():
        declared.setdefault(str(code), doc)


def _order(operation: dict[str, Any]) -> None:
    # Statuses in numeric order: how the API docs page lists them.
    operation["responses"] = dict(sorted(operation["responses"].items(), key=lambda kv: kv[0]))


def finish(schema: dict[str, Any], *, auth: bool, rate_limited: bool) -> dict[str, Any]:
    """Complete FastAPI's document (see the module docstring); returns `schema`, changed in place."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})[PROBLEM_COMPONENT] = copy.deepcopy(PROBLEM_SCHEMA)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from the server's ILJI_API_TOKENS, with the role read, write or admin. "
            "Without configured tokens the server asks for none.",
        }
    }
    if auth:
        schema["security"] = [{"bearer": []}]
    for path, method, operation in _operations(schema):
        op_id = operation.get("operationId", "")
        if not auth:
            # Routes list the answers of a token check (`AUTH_CODES`); a server without
            # tokens gives neither (a cross-site write's 403 is declared below).
            for code in AUTH_CODES:
                operation.get("responses", {}).pop(str(code), None)
        _declare(operation, 400, 413)
        if method in _WRITE_METHODS:
            _declare(operation, 403, 408)
        if op_id in PUBLIC_OPERATIONS:
            operation["security"] = []
        elif auth:
            _declare(operation, 401, 403)
        if not auth:
            _declare(operation, 421)  # HostGuard, on every route of a server without tokens
        if rate_limited and path not in EXEMPT_PATHS:
            _declare(operation, 429)
        _add_examples(operation, EXAMPLES.get(op_id, {}))
        if op_id in SSE_OPERATIONS:
            _document_sse(operation, SSE_OPERATIONS[op_id])
        _order(operation)
    return schema


def _add_examples(operation: dict[str, Any], examples: dict[str, Any]) -> None:
    for place, value in examples.items():
        if place == "request":
            content = operation.get("requestBody", {}).get("content", {})
        else:
            content = operation["responses"].get(place, {}).get("content", {})
        for media in content.values():
            media["example"] = value


def _document_sse(operation: dict[str, Any], unit: str) -> None:
    content = operation["responses"]["200"].setdefault("content", {})
    content["text/event-stream"] = {
        "schema": {"type": "string", "description": _SSE_FORMAT.format(unit=unit)},
        "example": _sse_example(unit),
    }


_FASTAPI_DEFAULT_ID = re.compile(r"_(get|put|post|delete|patch|head|options)$")


def is_generated_id(op_id: str) -> bool:
    """Does `op_id` look like FastAPI's default (`read_stream_v1_streams__stream__get`)?"""
    return bool(_FASTAPI_DEFAULT_ID.search(op_id)) or "__" in op_id
