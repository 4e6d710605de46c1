"""Who acts, as the audit log records an HTTP request: its token's role and fingerprint."""

from __future__ import annotations

from fastapi import Request

from ilji.server.auth import bearer_token
from ilji.server.state import state
from ilji.store.audit import Actor, token_fingerprint


def actor_of(request: Request) -> Actor:
    """Who is acting, for the audit log: the token's role and fingerprint, never the token.

    The fingerprint is the first 12 hex digits of the token's SHA-256, which is also how a
    hashed entry of ILJI_API_TOKENS (`sha256:<hex>=admin`) starts: an operator can tell which
    configured token acted without the log holding anything that lets one act.
    """
    tokens = state(request).tokens
    if not tokens.enabled:
        return Actor(via="http")
    token = bearer_token(request)
    if token is None:  # pragma: no cover - the admin dependency refused the request already
        return Actor(via="http")
    role = tokens.role_of(token)
    return Actor(
        via="http",
        role=role.name.lower() if role is not None else None,
        token_fingerprint=token_fingerprint(token),
    )
