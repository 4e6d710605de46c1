"""URLs are UTF-8: a path or query whose percent-escapes do not decode as UTF-8 is refused with
400 instead of being silently read with replacement characters (a stream name the client did
not send).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from ilji.server.problems import problem


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
