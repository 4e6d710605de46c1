"""The request body's bounds: refused with 413 before more than the limit is read, and with 408
when it does not arrive within its time (a body trickled a byte at a time would otherwise hold
a request open for ever). Each refusal is a problem+json answer that closes the connection.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ilji.server.problems import problem

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
