"""The server's problems (RFC 9457 bodies) as the library's own exceptions.

A client catches the same `WrongExpectedVersion`, `DuplicateEventId`, `ValidationError`,
`StreamNotFound` or `StoreUnavailable` whether it talks to PostgreSQL through the library or
to `ilji serve` over HTTP. What only HTTP has (a token refused, a rate limit) gets a class of
its own here, under `HttpError`.
"""

from __future__ import annotations

from typing import Any

import httpx

from ilji.domain.errors import (
    ConflictError,
    DuplicateEventId,
    IljiError,
    StoreUnavailable,
    StreamDeleted,
    StreamNotFound,
    ValidationError,
    WrongExpectedVersion,
)

_PREFIX = "urn:ilji:problem:"


class HttpError(IljiError):
    """The server answered with an error the library has no class for; `status` and `problem`
    (the problem+json body as a dict) say which."""

    code = "http-error"

    def __init__(self, status: int, message: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message, status=status)
        self.status = status
        self.problem = problem or {}


class Unauthorized(HttpError):
    """401: the server wants a token and got none, or one it does not know."""

    code = "unauthorized"


class Forbidden(HttpError):
    """403: the token's role does not allow this route (or a browser's cross-site write)."""

    code = "forbidden"


class RateLimited(HttpError):
    """429: this client is over its rate; `retry_after` is the server's advice in seconds."""

    code = "rate-limited"

    def __init__(self, message: str, problem: dict[str, Any], retry_after: float) -> None:
        super().__init__(429, message, problem)
        self.retry_after = retry_after


def retry_after(response: httpx.Response, default: float) -> float:
    """The `Retry-After` header in seconds (its number form; the date form falls back to `default`)."""
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"status": response.status_code, "detail": response.text[:500] or response.reason_phrase}


def _detailed(exc: IljiError, detail: str) -> IljiError:
    # The library's constructors word their own message; the server's detail says the same
    # with what the server knows, so keep that.
    exc.message = detail
    exc.args = (detail,)
    return exc


def error_of(response: httpx.Response, stream: str | None = None) -> IljiError:
    """The exception for an error `response` (`stream`: the stream the request was about)."""
    status = response.status_code
    body = _problem(response)
    kind = str(body.get("type", "")).removeprefix(_PREFIX)
    detail = str(body.get("detail") or response.reason_phrase)
    name = str(body.get("stream") or stream or "")
    if kind == "wrong-expected-version":
        return _detailed(
            WrongExpectedVersion(name, body.get("expected", "?"), int(body.get("actual", -1))), detail
        )
    if kind == "duplicate-event-id":
        ids = [str(i) for i in body.get("event_ids") or []]
        return _detailed(DuplicateEventId(name, ids, "already stored"), detail)
    if kind == "stream-deleted":
        return _detailed(StreamDeleted(name, int(body.get("deleted_version") or 0)), detail)
    if kind == "stream-not-found":
        return _detailed(StreamNotFound(name), detail)
    if status in (400, 413, 422):
        errors = body.get("errors") or [{}]
        first = errors[0] if isinstance(errors[0], dict) else {}
        field = str(first.get("field") or ("body" if status == 413 else "request"))
        return _detailed(ValidationError(field, str(first.get("message") or detail)), detail)
    if status == 401:
        return Unauthorized(status, detail, body)
    if status == 403:
        return Forbidden(status, detail, body)
    if status == 429:
        return RateLimited(detail, body, retry_after(response, 1.0))
    if status == 409:
        return ConflictError(detail, problem=body)
    if status == 503:
        return StoreUnavailable(detail, problem=body)
    return HttpError(status, detail, body)
