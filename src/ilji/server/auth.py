"""Bearer tokens with three roles: read, write (implies read) and admin (implies write).

Tokens come from one setting, `ILJI_API_TOKENS="tokA=read,tokB=write,tokC=admin"`. They are
compared in constant time and never logged: only the role a token grants leaves this module.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from ilji.domain.errors import IljiError, ValidationError


class Role(enum.IntEnum):
    """What a token may do; a higher role includes every lower one."""

    READ = 1
    WRITE = 2
    ADMIN = 3


class Unauthorized(IljiError):
    """The request carries no token, or one the server does not know (HTTP 401)."""

    code = "unauthorized"


class Forbidden(IljiError):
    """The token is valid but its role does not allow this route (HTTP 403)."""

    code = "forbidden"


@dataclass(frozen=True, slots=True)
class _Token:
    secret: bytes
    role: Role

    def __repr__(self) -> str:  # the secret never appears in a repr, a log or a traceback
        return f"_Token(role={self.role.name})"


class Tokens:
    """The configured tokens; empty means auth is off (and only loopback binds are allowed)."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens

    @property
    def enabled(self) -> bool:
        """True when at least one token is configured."""
        return bool(self._tokens)

    def role_of(self, presented: str) -> Role | None:
        """The role `presented` grants, or None for an unknown token."""
        candidate = presented.encode()
        found: Role | None = None
        # Compare with every token, without stopping early, so timing says nothing about
        # which token (or which prefix of one) matched.
        for token in self._tokens:
            if hmac.compare_digest(candidate, token.secret):
                found = token.role
        return found

    def __repr__(self) -> str:
        return f"Tokens({len(self._tokens)} configured)"


def parse_tokens(spec: str | None) -> Tokens:
    """Parse `"tokA=read,tokB=write"`; raise `ValidationError` on a malformed entry."""
    tokens: list[_Token] = []
    for number, entry in enumerate((spec or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        secret, sep, role = entry.rpartition("=")
        secret, role = secret.strip(), role.strip().lower()
        # The error names the entry by its number, never by its text: that is the secret.
        if not sep or not secret:
            raise ValidationError("api_tokens", f"entry {number} must look like TOKEN=ROLE")
        try:
            tokens.append(_Token(secret.encode(), Role[role.upper()]))
        except KeyError:
            raise ValidationError(
                "api_tokens", f"entry {number}: the role must be read, write or admin"
            ) from None
    return Tokens(tokens)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require(role: Role) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that lets a request through only with a token of `role` or higher."""

    async def check(request: Request) -> None:
        tokens: Tokens = request.app.state.tokens
        if not tokens.enabled:
            return
        presented = bearer_token(request)
        granted = tokens.role_of(presented) if presented is not None else None
        if granted is None:
            raise Unauthorized("a valid `Authorization: Bearer <token>` header is required")
        if granted < role:
            raise Forbidden(f"this route needs a {role.name.lower()} token; yours is {granted.name.lower()}")

    return check


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1: addresses only this machine can reach."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: Tokens) -> None:
    """Refuse to serve a non-loopback address without tokens (anyone could write events)."""
    if not tokens.enabled and not is_loopback(host):
        raise ValidationError(
            "host",
            f"refusing to listen on {host} without API tokens: anyone who can reach it could read "
            "and write every event. Set ILJI_API_TOKENS (like 'secret1=read,secret2=write') or bind "
            "a loopback address (127.0.0.1, ::1, localhost)",
        )
