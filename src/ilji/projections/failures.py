"""Failures while running projections: whose fault is an error, and what of it is written down.

Whose fault: an error of the database or the network says nothing about the event and is
retried without limit; an error of the handler's own work counts as an attempt on the event,
which is parked (or stops the partition) after `max_attempts`. A psycopg `OperationalError`
can be either: a lost connection is infrastructure, a statement timeout or a lock not
available in the handler's query is the handler's. So a handler's error is judged by where it
came from (`handler_error_is_infrastructure`), not by its class alone.

Both judgements are made once, by `run_handler`, which every call of projection code (`setup`,
`apply`, a replay) goes through: a failure of the handler's own becomes `HandlerFailed`, an
infrastructure failure `StoreUnavailable`. It runs inside the runner's transaction, before the
database seam (`ilji.store.database`) would translate a driver error without knowing whose it is.

What is written down: a handler's error text ends up in `ilji.parked_events.error`, in the
checkpoint row of a failed partition and in the worker's log, and any reader of the projection
status sees it. PostgreSQL's DETAIL line quotes row data (`Key (email)=(alice@example.com)
already exists`), so only the primary message is kept, and quoted values and e-mail addresses
in it are masked (`describe_error`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable

import psycopg

from ilji.domain.errors import IljiError, StoreUnavailable
from ilji.projections.errors import LeaseLost
from ilji.store.database import Connection

#: SQLSTATE classes of a server or connection in trouble (not of a statement): connection
#: exceptions, insufficient resources, operator intervention by shutdown (57P..), system errors.
_INFRASTRUCTURE_SQLSTATES = ("08", "53", "57P", "58", "XX")

#: The longest error text stored.
MAX_ERROR_LENGTH = 300

# A quoted value, unless the word before it says it is an identifier PostgreSQL names
# (constraint "seats_pkey", column "email", relation "seats_v1"), which helps and holds no data.
_QUOTED = re.compile(
    r"""(?<!\w)(?P<before>(?:constraint|column|relation|table|index|schema|sequence|view|function|type|"""
    r"""trigger|database|role|extension|operator|domain|collation)\s+)?(?P<quoted>"[^"]*"|'[^']*')""",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[^\s@\"'()<>,;:]+@[^\s@\"'()<>,;:]+")


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for failures of the database or the network, raised by the runner's own statements.

    Those are retried without limit (with backoff) and never park an event: a database
    restart must not fill the dead-letter table. For what a handler raises, see
    `handler_error_is_infrastructure`.
    """
    return isinstance(exc, psycopg.OperationalError | StoreUnavailable | OSError | LeaseLost)


def handler_error_is_infrastructure(exc: BaseException, conn: Connection) -> bool:
    """Whether an error raised by a handler (or `setup`) is infrastructure, judged by its origin.

    Infrastructure: the runner's connection broke (whatever the handler saw), the pool or the
    store is unavailable, a network error (`OSError`), a lost lease, or a PostgreSQL error of a
    class that concerns the server or the connection (08, 53, 57P, 58, XX) or that has no
    SQLSTATE at all (the driver's, about the connection). Anything else is the handler's: a
    statement timeout (57014) or a lock not available (55P03) in its query count as attempts
    like a constraint violation or a bug.
    """
    if conn.broken or conn.closed:
        return True
    if isinstance(exc, StoreUnavailable | OSError | LeaseLost):
        return True
    if isinstance(exc, psycopg.OperationalError):
        sqlstate = exc.sqlstate
        return sqlstate is None or sqlstate.startswith(_INFRASTRUCTURE_SQLSTATES)
    return False


def redact(text: str) -> str:
    """`text` with quoted values and e-mail addresses masked (identifiers PostgreSQL quotes stay)."""

    def mask(match: re.Match[str]) -> str:
        if match.group("before"):
            return match.group(0)
        quote = match.group("quoted")[0]
        return f"{quote}…{quote}"

    return _EMAIL.sub("…", _QUOTED.sub(mask, text))


def describe_error(exc: BaseException) -> str:
    """The error text Ilji stores and logs for a handler failure: class and primary message, redacted.

    For a PostgreSQL error, its primary message only (never DETAIL, HINT or CONTEXT, which
    quote rows); for anything else the first line of the message. Quoted values and e-mail
    addresses are masked and the text is cut at `MAX_ERROR_LENGTH` characters.
    """
    message: str | None = None
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        message = exc.diag.message_primary
    if message is None:
        message = str(exc)
    first = message.strip().splitlines()[0] if message.strip() else ""
    text = f"{type(exc).__name__}: {redact(first)}" if first else type(exc).__name__
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


class HandlerFailed(Exception):
    """Projection code (`setup`, `apply`, `handle`) failed on its own: an attempt on the event."""

    def __init__(self, cause: BaseException) -> None:
        #: What Ilji stores and logs of the failure (`describe_error`).
        self.error = describe_error(cause)
        super().__init__(self.error)


async def run_handler(conn: Connection, call: Awaitable[None]) -> None:
    """Await projection code working on `conn`, and say whose fault a failure is.

    The handler's own failure raises `HandlerFailed`; an infrastructure failure (see
    `handler_error_is_infrastructure`) raises `StoreUnavailable`, which the runner retries
    without counting an attempt. Translated here, not by the database seam: the seam cannot
    know that a statement timeout came from the handler's query.
    """
    try:
        await call
    except Exception as exc:
        if not handler_error_is_infrastructure(exc, conn):
            raise HandlerFailed(exc) from exc
        if isinstance(exc, IljiError):
            raise
        raise StoreUnavailable(f"the database failed under the projection: {describe_error(exc)}") from exc
