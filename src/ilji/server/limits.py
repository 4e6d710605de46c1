"""The request body limit: 413 before reading more than the limit, whatever the client claims."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ilji.server.problems import problem


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413 problem+json.

    A `Content-Length` over the limit is refused before any of the body is read. A chunked
    body (or one that lies about its length) is counted as it arrives and refused as soon as
    it passes the limit, so at most `limit` bytes plus one chunk are ever held in memory.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

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
                    response = problem(413, self._detail())
                    await response(scope, receive, send)
                    return
                break
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI re-raises HTTPException from body reading; the app's handler
                    # turns it into the same problem body as above.
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counting_receive, send)

    def _detail(self) -> str:
        return f"the request body is larger than the limit of {self.limit} bytes"
