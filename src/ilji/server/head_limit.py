"""The request head's bounds (request line and headers), enforced inside uvicorn's HTTP protocol.

uvicorn's httptools protocol keeps every header in memory and waits for the end of the head
without a deadline, so one client trickling headers, or sending megabytes of them, holds
memory and a connection for as long as it likes. `GuardedHttpToolsProtocol` answers 431 past
a size and 408 past a time, as problem+json, and closes the connection: the rest of what the
client sends is not worth reading.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState as UvicornServerState

from ilji.server.problems import problem

log = logging.getLogger(__name__)

#: Defaults for the request head when the protocol runs without Ilji's settings.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0


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
        server_state: UvicornServerState,
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
