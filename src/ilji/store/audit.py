"""The audit log: every admin action becomes an event of Ilji's own stream `$audit`.

Admin actions (stream lifecycle, projection pause/resume/rebuild/replay) change what readers
see or what workers do. Each one is written down as an event, in the same transaction as
the change when it succeeds, and on its own when it fails: who (an `Actor`: never a token,
only a fingerprint of it), what (`action`), on what (`target`), with which `parameters`, and
the `outcome`. Ilji's own streams start with `$`, which public appends refuse: only this
module's `SYSTEM_APPEND` statement writes them. Besides `$audit` and `$lifecycle`, which only
admin actions write, code may append to the `$checkpoint` streams (`append_system_stream`):
bookkeeping that must stay out of the global log readers see.
"""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import orjson

from ilji.domain.errors import ValidationError
from ilji.domain.events import NewEvent, category_of
from ilji.domain.validation import validate_stream_name
from ilji.store import sql
from ilji.store.database import Connection

T = TypeVar("T")

#: Who did what: one event per admin action.
AUDIT_STREAM = "$audit"
#: What changed in the lifecycle of streams and categories (deletes, truncations, retention).
LIFECYCLE_STREAM = "$lifecycle"

#: The category of the streams that hold `StreamCheckpointStore` checkpoints, `$checkpoint-<name>`.
CHECKPOINT_CATEGORY = "$checkpoint"

#: Event types of the audit stream.
ACTION_PERFORMED = "AdminActionPerformed"
ACTION_FAILED = "AdminActionFailed"

# Ilji's system appends take this transaction-level advisory lock first. The system streams
# are written rarely (admin actions) and by few writers, so serialising them is cheap, and it
# means two admin actions never race for the next version of $audit. Ordinary appends never
# take it.
SYSTEM_APPEND_LOCK = sql.load("system_append_lock")
SYSTEM_APPEND = sql.load("append_system")


def check_appendable_system_stream(stream: str) -> str:
    """Refuse a stream `append_system_stream` may not write: anything but `$checkpoint-<name>`.

    `$audit` and `$lifecycle` are written only with the admin actions they record.
    """
    name = validate_stream_name(stream, allow_system=True)
    if category_of(name) != CHECKPOINT_CATEGORY or name == CHECKPOINT_CATEGORY:
        raise ValidationError("stream", f"only {CHECKPOINT_CATEGORY}-<name> streams take system appends")
    return name


def token_fingerprint(token: str) -> str:
    """The first 12 hex digits of the token's SHA-256: names a token in the audit log without
    revealing it (tokens are long random secrets, so the digest cannot be turned back)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performed an admin action: through which door, with which role, as whom."""

    #: "http" (the server), "cli" (`ilji ...`) or "python" (a program calling Ilji directly).
    via: str
    #: The role of the HTTP token ("admin"), or None when the server runs without tokens.
    role: str | None = None
    #: `token_fingerprint` of the HTTP token, never the token itself.
    token_fingerprint: str | None = None
    #: The operating-system user of a CLI or Python caller.
    user: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The person running `ilji` here (their OS user name)."""
        return cls(via="cli", user=_os_user())

    @classmethod
    def process(cls) -> Actor:
        """This Python process, for calls that did not say who they act for."""
        return cls(via="python", user=_os_user())

    def as_json(self) -> dict[str, Any]:
        """The actor as stored in an audit event (absent fields left out)."""
        fields = {
            "via": self.via,
            "role": self.role,
            "token_fingerprint": self.token_fingerprint,
            "user": self.user,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True, slots=True)
class AdminResult(Generic[T]):
    """What the body of an admin action did: its `value` for the caller, the `$lifecycle`
    `events` that record the change, and the `outcome` for the audit log: "ok" when something
    changed, "unchanged" when it was as asked already."""

    value: T
    events: Sequence[NewEvent] = ()
    outcome: Literal["ok", "unchanged"] = "ok"


def audit_event(
    actor: Actor,
    action: str,
    target: str,
    parameters: dict[str, Any],
    outcome: str,
    detail: str | None = None,
) -> NewEvent:
    """The `$audit` event of one action; `outcome` is "ok", "unchanged" or an error code."""
    data: dict[str, Any] = {
        "action": action,
        "target": target,
        "parameters": parameters,
        "outcome": outcome,
        "actor": actor.as_json(),
    }
    if detail is not None:
        data["detail"] = detail
    kind = ACTION_PERFORMED if outcome in ("ok", "unchanged") else ACTION_FAILED
    return NewEvent(kind, data)


async def append_system(conn: Connection, events: Sequence[tuple[str, NewEvent]]) -> None:
    """Append Ilji's own events (stream, event) in the caller's transaction, in one statement.

    One statement per transaction: positions are the transaction id plus the index in the
    statement, so a second insert in the same transaction would reuse position 0.
    """
    await conn.execute(SYSTEM_APPEND_LOCK)
    await conn.execute(
        SYSTEM_APPEND,
        {
            "streams": [stream for stream, _ in events],
            "ids": [event.id for _, event in events],
            "types": [event.type for _, event in events],
            "data": [orjson.dumps(event.data).decode() for _, event in events],
            "metadata": [orjson.dumps(event.metadata).decode() for _, event in events],
        },
    )
