"""How the OpenAPI document describes error answers: the Problem schema and each status's text.

Every error response of every route is a problem+json body (`problems.problem`), documented as
one shared `Problem` component. What a status means depends on the routes (a 404 of a stream
read is "the stream has no events", of a projection route "no projection of that name"), so
the descriptions come in one table per group of routes, all here, built on the texts they
share. `responses(table, *codes)` makes a route's `responses=` from one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROBLEM_MEDIA_TYPE = "application/problem+json"

#: The name of the problem schema among the OpenAPI document's components.
PROBLEM_COMPONENT = "Problem"

#: The answers only a server with tokens gives (`openapi.finish` drops them from the
#: document of a server without tokens): routes list them with their own codes.
AUTH_CODES = (401, 403)

_UNAUTHORIZED = "A missing or unknown bearer token."
_BODY_TOO_LARGE = "The request body is over the configured limit."
_UNAVAILABLE = "The database is unavailable or not migrated; retry later."
_SCHEMA_MISMATCH = "The request does not match the schema (wrong types, values out of range)."
_BODY_MISMATCH = "The request does not match the schema (bad JSON, wrong types, values out of range)."
_ROLE_OR_SITE = (
    "The token's role does not allow this route, or a web page from another site tried to change data."
)

#: Why a route answers a status it does not produce itself (the middleware's answers).
GENERAL = {
    400: "The URL is not UTF-8 after percent-decoding, or a name or value in it is invalid.",
    401: _UNAUTHORIZED,
    403: _ROLE_OR_SITE,
    408: "The request body did not arrive in time.",
    413: _BODY_TOO_LARGE,
    421: "Without tokens the server answers only loopback host names and ILJI_ALLOWED_HOSTS "
    "(a guard against DNS rebinding); the request's Host is not one of them.",
    429: "Too many requests from this client; wait for `Retry-After` seconds.",
}

#: The streams, the global log and the probes (`stream_routes`, `probe_routes`).
STREAMS = {
    400: "Invalid input (a stream, category or type name, a header, or event contents).",
    401: _UNAUTHORIZED,
    403: _ROLE_OR_SITE,
    404: "The stream has no events.",
    409: "A conflict: `expected_version` in the body does not hold, or an event id is stored already.",
    412: "The `If-Match` precondition failed: the stream is not at that version.",
    413: _BODY_TOO_LARGE,
    422: _BODY_MISMATCH,
    503: _UNAVAILABLE,
    507: "The store reached its position limit (2^41 transaction ids); retrying does not help.",
}

#: The projection routes (`projection_routes`).
PROJECTIONS = {
    400: "The request body is not valid JSON.",
    401: _UNAUTHORIZED,
    403: "The token's role does not allow this route (actions need the admin role).",
    404: "No projection of that name is registered.",
    413: _BODY_TOO_LARGE,
    422: _SCHEMA_MISMATCH,
    503: _UNAVAILABLE,
    504: "The projection did not reach the position within `timeout` seconds.",
}

#: The lifecycle routes (`lifecycle_routes`).
LIFECYCLE = {
    400: "Invalid input (a reserved $ name, a version out of range, no retention rule given).",
    401: _UNAUTHORIZED,
    403: "Lifecycle routes need the admin role.",
    404: "The stream has no events.",
    413: _BODY_TOO_LARGE,
    422: _BODY_MISMATCH,
    503: _UNAVAILABLE,
}

#: The routes the console reads (`console_routes`).
CONSOLE = {
    400: "Invalid input (a stream, category or prefix).",
    401: _UNAUTHORIZED,
    403: "The token's role does not allow this route ($ streams need an admin token).",
    404: "The stream has no events, or no domain view is registered for its category.",
    422: _SCHEMA_MISMATCH,
    503: _UNAVAILABLE,
}


def responses(descriptions: Mapping[int, str], *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for `codes`: each a problem+json body, described from `descriptions`."""
    ref = {"$ref": f"#/components/schemas/{PROBLEM_COMPONENT}"}
    return {
        code: {"description": descriptions[code], "content": {PROBLEM_MEDIA_TYPE: {"schema": dict(ref)}}}
        for code in codes
    }


#: The JSON schema of a problem body: one component of the OpenAPI document, which every
#: error response refers to (generated clients then have one Problem type, not one per route).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error (RFC 9457 problem details): `type` tells the kind, `detail` what went wrong.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": "a URI naming the kind of problem, like urn:ilji:problem:…",
        },
        "title": {"type": "string", "description": "the HTTP status's phrase"},
        "status": {"type": "integer", "description": "the HTTP status code"},
        "detail": {"type": "string", "description": "what went wrong, for a person to read"},
        "expected": {
            "description": "the expected version (wrong expected version only)",
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        },
        "actual": {"type": "integer", "description": "the stream's version (wrong expected version only)"},
        "projection": {"type": "string", "description": "the projection's name (projection problems only)"},
        "position": {"type": "integer", "description": "the position waited for (wait timeouts only)"},
        "stream": {
            "type": "string",
            "description": "the stream (soft-deleted streams, and the failing part of a multi-stream append)",
        },
        "part": {
            "type": "integer",
            "description": "the index of the failing part (multi-stream appends only)",
        },
        "deleted_version": {
            "type": "integer",
            "description": "the version at which the stream was soft-deleted; an admin can restore it",
        },
        "event_ids": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the event ids stored already (duplicate event ids only)",
        },
        "errors": {
            "type": "array",
            "items": {"type": "object"},
            "description": "what is wrong in the request",
        },
    },
}
