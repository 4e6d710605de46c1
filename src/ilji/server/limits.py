"""Bounds on what one request or connection may cost the server, whatever the client sends.

- The request body: refused with 413 before more than the limit is read, and with 408 when
  it does not arrive within its time (a body trickled a byte at a time would otherwise hold
  a request open for ever).
- The request head (request line and headers): uvicorn's httptools protocol keeps every
  header in memory and waits for the end of the head without a deadline, so one client
  trickling headers, or sending megabytes of them, holds memory and a connection for as long
  as it likes. `GuardedHttpToolsProtocol` answers 431 past a size and 408 past a time.
- The URL: a path or query whose percent-escapes do not decode as UTF-8 is refused with 400
  instead of being silently read with replacement characters (a stream name the client did
  not send).
- Cross-site writes: a request that changes data and carries an `Origin` other than the
  server's own is refused with 403 (`CrossOriginGuard`).
- DNS rebinding: a server without tokens answers only requests whose `Host` is a loopback
  name or one the operator allowed; others get 421 (`HostGuard`).

Every refusal is a problem+json answer, and the connection is closed after it: the rest of
what the client sends is not worth reading.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from ilji.server.auth import is_loopback
from ilji.server.problems import problem

log = logging.getLogger("ilji.server")

#: Defaults for the request head when the protocol runs without Ilji's settings.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0

_CLOSE = {"Connection": "close"}


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes (413), or slower than `timeout` seconds (408).

    A `Content-Length` over the limit is refused before any of the body is read. A chunked
    body (or one that lies about its length) is counted as it arrives and refused as soon as
    it passes the limit, so at most `limit` bytes plus one chunk are ever held in memory.
    The time runs from the start of the request until the body's last chunk; once the body
    is complete (always at once for a GET), waiting for the client is not limited, so an SSE
    response can still watch for the client going away.
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float | None = None) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit:
                    response = problem(413, self._detail(), headers=_CLOSE)
                    await response(scope, receive, send)
                    return
                break
        received = 0
        complete = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout if self.timeout is not None else None

        async def counting_receive() -> Message:
            nonlocal received, complete
            if complete or deadline is None:
                message = await receive()
            else:
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs receive() in a
                    # task of its own, on every append.
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    # FastAPI re-raises HTTPException from body reading; the app's handler
                    # turns it into a problem body.
                    raise HTTPException(
                        408, f"the request body did not arrive within {self.timeout:g} seconds", _CLOSE
                    ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.limit:
                    raise HTTPException(413, self._detail(), _CLOSE)
            return message

        await self.app(scope, counting_receive, send)

    def _detail(self) -> str:
        return f"the request body is larger than the limit of {self.limit} bytes"


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CrossOriginGuard:
    """Refuse (403) a request that changes data when a browser says another site sent it.

    A web page may POST to any address, a server on the visitor's own machine included, and
    for "simple" requests (a text/plain or form body) the browser asks no CORS question first.
    Such requests always carry an `Origin` header naming the page's site, and programs (curl,
    httpx, other services) send none, so the check stops the first and never the second: a
    write is refused when its `Origin` is present and differs from the `Host` it was sent to.
    The console is served by the same server, so its requests are same-origin.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") not in _SAFE_METHODS:
            headers = dict(scope.get("headers") or ())
            origin = headers.get(b"origin")
            if origin is not None and not _same_origin(origin, headers.get(b"host")):
                shown = origin.decode("latin-1")[:100]
                detail = f"a web page from {shown} may not change data on this server (cross-origin request)"
                await problem(403, detail, code="cross-origin")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HostGuard:
    """Refuse (421) a request whose `Host` is not a loopback name or an allowed host.

    Installed on a server without tokens, which treats every request as an admin's because
    only this machine can reach it. A web page can still get there by DNS rebinding: its own
    name, say `evil.example`, is made to resolve to 127.0.0.1, and the browser then sends the
    page's requests to this server as same-origin ones, with `Host: evil.example:PORT` and a
    matching `Origin`, which `CrossOriginGuard` cannot tell from the console's. The `Host` is
    the name the browser resolved, so answering only names that mean this machine
    (`localhost`, 127.0.0.0/8, `[::1]`) or that the operator listed stops it, reads included
    (the page would read the answers). A request without `Host` (HTTP/1.0) comes from a
    program, never a browser, and passes.

    421 Misdirected Request says what happened: the request names a host this server does not
    serve. Nothing of the request is read or stored.
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((value for name, value in scope.get("headers") or () if name == b"host"), None)
            if host is not None and not host_allowed(host.decode("latin-1"), self.allowed):
                shown = host.decode("latin-1")[:100]
                detail = (
                    f"this server answers loopback host names only (localhost, 127.0.0.1, [::1]), "
                    f"not {shown!r}; list other names in ILJI_ALLOWED_HOSTS or use API tokens"
                )
                log.warning("request refused", extra={"status": 421, "detail": detail})
                await problem(421, detail, code="host-not-allowed", headers=_CLOSE)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def parse_allowed_hosts(spec: str | None) -> frozenset[str]:
    """The entries of `ILJI_ALLOWED_HOSTS` ("name" or "name:port", comma-separated), lowercased."""
    return frozenset(entry.strip().lower() for entry in (spec or "").split(",") if entry.strip())


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """Whether a `Host` header names this machine's loopback, or an allowed host.

    An allowed entry without a port matches the name on any port; with one, that port only.
    """
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 address: [::1]:8000
        name, bracket, rest = host.partition("]")
        name += bracket
        if rest and not rest.startswith(":"):
            return False
        port = rest[1:]
    else:
        name, _, port = host.partition(":")
    if port and not port.isdigit():
        return False
    return is_loopback(name) or name in allowed or host in allowed


def _same_origin(origin: bytes, host: bytes | None) -> bool:
    # `Origin: null` (a sandboxed frame, a file:// page) is never this server.
    scheme, sep, rest = origin.partition(b"://")
    return bool(sep) and scheme in (b"http", b"https") and host is not None and rest.lower() == host.lower()


class Utf8UrlMiddleware:
    """Refuse (400) a URL whose path or query does not decode as UTF-8 after percent-decoding.

    The ASGI server decodes `%FF` to U+FFFD, so `/v1/streams/a-%FF` would otherwise append to
    a stream named `a-\\ufffd`: stored under a name the client never sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for part, raw in (
                ("path", scope.get("raw_path") or b""),
                ("query", scope.get("query_string", b"")),
            ):
                if b"%" not in raw:
                    continue
                try:
                    unquote_to_bytes(raw).decode("utf-8")
                except UnicodeDecodeError as exc:
                    detail = f"the URL {part} is not UTF-8 after percent-decoding (byte {exc.start})"
                    await problem(400, detail, code="invalid-url")(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that was answered already."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size and a time limit on each request's head.

    `ilji serve` names it as uvicorn's `http` protocol. The limits come from the settings of
    the app factory uvicorn runs (`max_header_bytes`, `header_timeout`). The time runs from
    the connection's opening, or a kept-alive connection's next request, to the end of the
    headers; a connection that sent nothing of a request is closed without an answer, as
    uvicorn's keep-alive timeout does; one that sent part of a head gets a 408.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = getattr(config.app, "settings", None)
        self.max_head = int(getattr(settings, "max_header_bytes", DEFAULT_MAX_HEADER_BYTES))
        self.head_timeout = float(getattr(settings, "header_timeout", DEFAULT_HEADER_TIMEOUT))
        self._head_bytes = 0
        self._raw_head_bytes = 0
        self._heads_done = 0
        self._in_head = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's head."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse, count what arrives in the middle of a head, ignore what follows a refusal."""
        if self._refused:
            return
        heads_before, was_in_head = self._heads_done, self._in_head
        super().data_received(data)
        # httptools reports a header only once its line is complete, and keeps the unfinished
        # line in memory (copying it at every chunk): one endless header line is never seen by
        # `on_header`. A chunk that arrives while a head is open, and leaves it open, is all
        # head, so it counts in full. The head's first chunk is not counted here (it may hold
        # the end of the previous request), which leaves the bound at the limit plus one read.
        if was_in_head and self._in_head and heads_before == self._heads_done and not self._refused:
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > self.max_head:
                self._refuse(431, f"the request line and headers are larger than {self.max_head} bytes")

    def on_message_begin(self) -> None:
        """A request starts: count its head from zero, on the clock."""
        super().on_message_begin()
        self._head_bytes = 0
        self._raw_head_bytes = 0
        self._in_head = True
        if self._head_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        """Count the request line's URL (it may come in several pieces)."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count a header."""
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is complete: stop the clock, hand the request to the app."""
        self._in_head = False
        self._heads_done += 1
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """A request that is not HTTP: a problem+json 400 (uvicorn's is plain text)."""
        if not self._refused:
            self._refuse(400, "the request is not valid HTTP/1.1", "invalid-http")

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head:
            self._refuse(431, f"the request line and headers are larger than {self.max_head} bytes")
            raise _Refused  # stops the parser; uvicorn's parser-error branch then does nothing

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request is still being answered: writing now would corrupt that
            # response. Look again later.
            self._arm()
            return
        if not self._in_head:
            self.transport.close()  # nothing of a request arrived: an idle connection
            return
        self._refuse(408, f"the request line and headers did not arrive within {self.head_timeout:g} seconds")

    def _refuse(self, status: int, detail: str, code: str | None = None) -> None:
        self._refused = True
        self._disarm()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        log.warning("request refused", extra={"status": status, "detail": detail, "client": client})
        response = problem(status, detail, code=code)
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"content-type: {response.media_type}\r\ncontent-length: {len(response.body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("latin-1") + bytes(response.body))
        self.transport.close()
