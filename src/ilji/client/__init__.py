"""The official HTTP client of `ilji serve`: `Client` (blocking) and `AsyncClient` (asyncio).

Install it with `pip install 'ilji[client]'` (it needs httpx). It speaks the server's HTTP API
and nothing else; it never imports the server. Events go in as the library's `NewEvent` and
come out as `RecordedEvent`, and the server's problems come back as the library's exceptions
(`WrongExpectedVersion`, `DuplicateEventId`, `ValidationError`, `StreamNotFound`,
`StoreUnavailable`), plus `Unauthorized`, `Forbidden` and `RateLimited`, which only HTTP has.

Calls are sent again after a network error, a 503 or a 429 (an append keeps its events'
ids, so a retry of a stored batch is recognised, not stored twice); subscriptions reconnect
with `Last-Event-ID` and go on where they stopped.
"""

from ilji.client.aio import AsyncClient, AsyncSubscription
from ilji.client.errors import Forbidden, HttpError, RateLimited, Unauthorized
from ilji.client.protocol import LogPage, StreamPage
from ilji.client.sync import Client, Subscription

__all__ = [
    "AsyncClient",
    "AsyncSubscription",
    "Client",
    "Forbidden",
    "HttpError",
    "LogPage",
    "RateLimited",
    "StreamPage",
    "Subscription",
    "Unauthorized",
]
