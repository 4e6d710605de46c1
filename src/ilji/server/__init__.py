"""The HTTP server, and the front door of an application that serves Ilji's HTTP API.

An application imports from here, never from the modules below: `create_app` builds the app
`ilji serve` runs (mount it, or add routes of your own to it); routes of your own that take an
expected version from the client use `etag` (a version out as an `ETag`),
`expected_from_if_match` (the version an `If-Match` states, RFC 9110) and `PreconditionFailed`
(the 412 of a failed `If-Match`). Errors raised in a route of the app, an Ilji error or a
business rule's `CommandRejected`, become problem+json answers through the one table in
`problems`. `create_app` is loaded on first use, so `import ilji.server` loads no web framework.
Nothing else in Ilji imports this package.

Where each idea lives:

- `factory`: the app factory (`create_app`), the store's lifetime, the database monitor loop
- `state`: `ServerState`, what one app shares between requests, and `state(request)` to reach it
- `append_routes`, `read_routes`, `probe_routes`, `projection_routes`, `lifecycle_routes`,
  `console_routes`, `docs_page`: the routes, one module-level `APIRouter` each
- `paths`: stream and category names in URLs; `preconditions`: `ETag` and `If-Match`
- `models`: request and response shapes (pydantic), and the JSON of events and statuses
- `problems`: the one table from Ilji errors to HTTP statuses, and problem+json bodies;
  `problem_docs`: how the OpenAPI document describes those answers
- `openapi`: operation ids, examples and the statuses every route shares
- `auth`: bearer tokens and roles; `actor`: who acted, for the audit log
- `body_limit`, `head_limit`, `utf8_url`, `browser_guards`, `ratelimit`: bounds and guards on
  what a request may cost or do (body, request head, URL, cross-site writes and DNS
  rebinding, rate)
- `sse`: Server-Sent Events with heartbeats and a bounded buffer per connection
- `metrics`: Prometheus metrics and the request-counting middleware
- `run`: `ilji serve` (uvicorn, workers, signals)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ilji.server.preconditions import PreconditionFailed, etag, expected_from_if_match

if TYPE_CHECKING:
    from ilji.server.factory import create_app


def __getattr__(name: str) -> Any:
    """Load `create_app` on first use (PEP 562): the factory loads FastAPI and every route."""
    if name != "create_app":
        raise AttributeError(f"module 'ilji.server' has no attribute {name!r}")
    from ilji.server.factory import create_app

    globals()[name] = create_app  # later lookups skip this function
    return create_app


def __dir__() -> list[str]:
    """The module's names, `create_app` included before its first use."""
    return sorted({*globals(), "create_app"})


__all__ = ["PreconditionFailed", "create_app", "etag", "expected_from_if_match"]
