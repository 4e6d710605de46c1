"""The HTTP server. Nothing else in Ilji imports it.

Where each idea lives:

- `app`: the app factory (`create_app`), the store's lifetime, the database monitor loop, draining
- `routes`: HTTP API v1 (append, read a stream, the global log, categories), probes, metrics
- `models`: request and response shapes (pydantic), and the event's JSON object
- `problems`: the one table from Ilji errors to HTTP statuses, and problem+json bodies
- `auth`: bearer tokens, roles, and the refusal to serve a public address without them
- `sse`: Server-Sent Events with heartbeats and a bounded buffer per connection
- `limits`: the request body limit
- `metrics`: Prometheus metrics and the request-counting middleware
- `run`: `ilji serve` (uvicorn, workers, signals)
"""
