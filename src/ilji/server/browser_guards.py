"""Guards against web pages that turn a visitor's browser against this server.

- Cross-site writes: a request that changes data and carries an `Origin` other than the
  server's own is refused with 403 (`CrossOriginGuard`).
- DNS rebinding: a server without tokens answers only requests whose `Host` is a loopback
  name or one the operator allowed; others get 421 (`HostGuard`).

Every refusal is a problem+json answer.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from ilji.server.auth import is_loopback
from ilji.server.problems import problem

log = logging.getLogger(__name__)

_CLOSE = {"Connection": "close"}

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
