"""The HTTP server. Nothing else in Ilji imports it.

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
