"""Request rate limits: a token bucket per API token, or per client address without tokens.

`ILJI_RATE_LIMIT="50/s"` lets each client make 50 requests a second on average and
`ILJI_RATE_LIMIT_BURST` at once (default: one second's worth). `ILJI_RATE_LIMIT_ROLES`
replaces the rate for tokens of a role (`"read=200/s,write=20/s"`). A client over its rate
gets 429 problem+json with `Retry-After`; /healthz and /readyz are never limited, so probes
keep working under load.

Who is a client: the configured token a request presents (its entry in `ILJI_API_TOKENS`,
never the token itself), else the connection's address, which is also how requests with a
wrong token are counted (a brute-force attempt is limited like any other client). Behind a
proxy every request comes from the proxy's address: limit per token there, or at the proxy.

Memory is bounded: at most `ILJI_RATE_LIMIT_CLIENTS` buckets, the least recently used
forgotten first; a bucket that has refilled is the same as no bucket and is dropped early.
Each server process keeps its own buckets, so with `--workers N` (or N replicas) a client
can make up to N times the rate in total.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ilji.domain.errors import ValidationError
from ilji.server.auth import Role, Tokens, bearer_of
from ilji.server.metrics import Metrics
from ilji.server.problems import problem
from ilji.settings import Settings

#: Paths a rate limit never applies to: orchestrators probe them and must always get an answer.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$", re.I)
_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


@dataclass(frozen=True, slots=True)
class Rate:
    """A bucket's refill rate (requests per second) and size (requests at once)."""

    per_second: float
    burst: float


def parse_rate(text: str, field: str, burst: int | None = None) -> Rate:
    """`"50/s"`, `"600/min"`, `"1000/h"` (a bare number is per second) as a `Rate`."""
    match = _RATE.match(text)
    if not match or float(match[1]) <= 0:
        raise ValidationError(field, f"{text!r} is not a rate: write it like 50/s, 600/min or 1000/h")
    per_second = float(match[1]) / _SECONDS[(match[2] or "s").lower()]
    return Rate(per_second, float(burst) if burst is not None else max(1.0, per_second))


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The configured rates: the default one and per-role replacements (None: unlimited)."""

    default: Rate | None
    roles: dict[Role, Rate]
    clients: int

    def for_role(self, role: Role | None) -> Rate | None:
        """The rate for a token of `role` (None: a client without a valid token)."""
        if role is not None and role in self.roles:
            return self.roles[role]
        return self.default


def rate_limits(settings: Settings) -> RateLimits | None:
    """The settings' rate limits, None when none is configured; `ValidationError` if malformed."""
    burst = settings.rate_limit_burst
    default = parse_rate(settings.rate_limit, "rate_limit", burst) if settings.rate_limit else None
    roles: dict[Role, Rate] = {}
    for entry in (settings.rate_limit_roles or "").split(","):
        if not entry.strip():
            continue
        name, sep, rate = entry.partition("=")
        if not sep or name.strip().upper() not in Role.__members__:
            raise ValidationError(
                "rate_limit_roles", f"{entry.strip()!r}: write it like read=200/s,write=20/s"
            )
        roles[Role[name.strip().upper()]] = parse_rate(rate, "rate_limit_roles", burst)
    if default is None and not roles:
        return None
    return RateLimits(default, roles, settings.rate_limit_clients)


class Buckets:
    """Token buckets by client key, at most `capacity` of them (least recently used go first)."""

    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.clock = clock
        # key -> (requests left, when last updated, its rate); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float, Rate]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, rate: Rate) -> float:
        """Take one request from `key`'s bucket: 0 if allowed, else seconds until one is."""
        now = self.clock()
        level, updated, _ = self._buckets.pop(key, (rate.burst, now, rate))
        level = min(rate.burst, level + (now - updated) * rate.per_second)
        wait = 0.0
        if level >= 1:
            level -= 1
        else:
            wait = (1 - level) / rate.per_second
        self._buckets[key] = (level, now, rate)
        self._forget_idle(now)
        return wait

    def _forget_idle(self, now: float) -> None:
        # The oldest buckets come first: drop those that have refilled (a full bucket is the
        # same as none), then, over capacity, the least recently used whatever their level.
        # Each call drops what it can from the front, so the work per request stays small.
        while self._buckets:
            key, (level, updated, rate) = next(iter(self._buckets.items()))
            full = level + (now - updated) * rate.per_second >= rate.burst
            if not full and len(self._buckets) <= self.capacity:
                break
            del self._buckets[key]


class RateLimitMiddleware:
    """Answer 429 problem+json (with `Retry-After`) to a client over its rate."""

    def __init__(self, app: ASGIApp, limits: RateLimits, tokens: Tokens, metrics: Metrics) -> None:
        self.app = app
        self.limits = limits
        self.tokens = tokens
        self.metrics = metrics
        self.buckets = Buckets(limits.clients)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        key, role = self._client(scope)
        rate = self.limits.for_role(role)
        wait = self.buckets.take(key, rate) if rate is not None else 0.0
        if rate is None or wait <= 0:
            await self.app(scope, receive, send)
            return
        self.metrics.rate_limited.labels(role.name.lower() if role else "none").inc()
        retry_after = max(1, math.ceil(wait))
        response = problem(
            429,
            f"too many requests: the limit is {rate.per_second:g} a second (bursts of "
            f"{rate.burst:g}); retry in {retry_after} s",
            code="rate-limited",
            headers={"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)

    def _client(self, scope: Scope) -> tuple[str, Role | None]:
        if self.tokens.enabled:
            presented = bearer_of(Headers(scope=scope).get("authorization"))
            token = self.tokens.find(presented) if presented is not None else None
            if token is not None:
                return f"token:{token.number}", token.role
        client = scope.get("client")
        return f"address:{client[0] if client else 'unknown'}", None
