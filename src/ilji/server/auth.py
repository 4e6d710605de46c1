"""Bearer tokens with three roles: read, write (implies read) and admin (implies write).

Tokens come from one setting, `ILJI_API_TOKENS="tokA=read,tokB=write,tokC=admin"`. An entry
may give the token's SHA-256 instead of the token (`sha256:<64 hex digits>=write`, made by
`ilji token new` or `ilji token hash`), so the secret itself need not sit in the configuration.

Only digests are kept: a presented token is hashed once and compared with every configured
digest in constant time. Tokens are never logged: only the role a token grants, and the
entry's number (for rate limits), leave this module.

Plain SHA-256 without a salt is enough here because tokens are long random strings, not
passwords: nobody can guess one from its digest by trying likely values.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from ilji.domain.errors import IljiError, ValidationError
from ilji.server.state import state


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


HASH_PREFIX = "sha256:"
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


def hash_token(token: str) -> str:
    """The form of `token` that `ILJI_API_TOKENS` accepts in its place: `sha256:<hex>`."""
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A new random token: 256 bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Token:
    """A configured token: its SHA-256, its role and its entry's number in `ILJI_API_TOKENS`."""

    digest: bytes
    role: Role
    number: int

    def __repr__(self) -> str:  # not even the digest appears in a repr, a log or a traceback
        return f"Token(#{self.number}, role={self.role.name})"


class Tokens:
    """The configured tokens; empty means auth is off (and only loopback binds are allowed)."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens

    @property
    def enabled(self) -> bool:
        """True when at least one token is configured."""
        return bool(self._tokens)

    def find(self, presented: str) -> Token | None:
        """The configured token `presented` is, or None for an unknown token."""
        candidate = hashlib.sha256(presented.encode()).digest()
        found: Token | None = None
        # Compare with every digest, without stopping early, so timing says nothing about
        # which token matched; comparing digests, not secrets, also hides their lengths.
        for token in self._tokens:
            if hmac.compare_digest(candidate, token.digest):
                found = token
        return found

    def role_of(self, presented: str) -> Role | None:
        """The role `presented` grants, or None for an unknown token."""
        token = self.find(presented)
        return token.role if token is not None else None

    def __repr__(self) -> str:
        return f"Tokens({len(self._tokens)} configured)"


def parse_tokens(spec: str | None) -> Tokens:
    """Parse `"tokA=read,sha256:<hex>=write"`; raise `ValidationError` on a malformed entry."""
    tokens: list[Token] = []
    for number, entry in enumerate((spec or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        secret, sep, role = entry.rpartition("=")
        secret, role = secret.strip(), role.strip().lower()
        # The error names the entry by its number, never by its text: that is the secret.
        if not sep or not secret:
            raise ValidationError("api_tokens", f"entry {number} must look like TOKEN=ROLE")
        if role.upper() not in Role.__members__:
            raise ValidationError("api_tokens", f"entry {number}: the role must be read, write or admin")
        if secret.startswith(HASH_PREFIX):
            hex_digest = secret.removeprefix(HASH_PREFIX)
            if not _HEX_DIGEST.match(hex_digest):
                raise ValidationError(
                    "api_tokens", f"entry {number}: a hashed token is {HASH_PREFIX} and 64 hex digits"
                )
            digest = bytes.fromhex(hex_digest)
        else:
            digest = hashlib.sha256(secret.encode()).digest()
        tokens.append(Token(digest, Role[role.upper()], number))
    return Tokens(tokens)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    return bearer_of(request.headers.get("authorization"))


def bearer_of(header: str | None) -> str | None:
    """The token of an `Authorization` header's value when it is `Bearer <token>`."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def role_of_request(request: Request) -> Role | None:
    """The role the request's token grants: admin when auth is off, None without a valid token."""
    tokens = state(request).tokens
    if not tokens.enabled:
        return Role.ADMIN
    presented = bearer_token(request)
    return tokens.role_of(presented) if presented is not None else None


def require(role: Role) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that lets a request through only with a token of `role` or higher."""

    async def check(request: Request) -> None:
        granted = role_of_request(request)
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
