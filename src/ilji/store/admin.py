"""Admin transactions: a change and the events that record it, committed together.

An admin action (a stream lifecycle rule, a projection pause, a scavenge batch) runs its body
in one transaction under the system append lock; its `$lifecycle` events and its `$audit`
event are appended in that same transaction, so the change and its record commit together or
not at all. A failed action is audited on its own. See `ilji.store.audit` for the records.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ilji.domain.errors import IljiError, StoreUnavailable
from ilji.domain.events import ANY, ExpectedVersion, NewEvent, expected_version_holds
from ilji.domain.validation import validate_events, validate_expected_version
from ilji.store import sql
from ilji.store.append_rules import version_conflict
from ilji.store.audit import (
    AUDIT_STREAM,
    LIFECYCLE_STREAM,
    SYSTEM_APPEND_LOCK,
    Actor,
    AdminResult,
    append_system,
    audit_event,
    check_appendable_system_stream,
)
from ilji.store.database import Connection, Database
from ilji.store.encoding import encode_event
from ilji.store.reads import current_version

T = TypeVar("T")

AdminBody = Callable[[Connection], Awaitable[AdminResult[T]]]
"""The work of an admin action inside its transaction: makes the change, says what it did."""

log = logging.getLogger(__name__)

_TRANSACTION_TIMEOUT = sql.load("transaction_timeout")


class AdminTransactions:
    """Runs admin actions with their audit records, and Ilji's own system-stream appends.

    `poke` wakes followers after a commit. `pooled`: behind a transaction pooler, where the
    idle-in-transaction timeout is set per transaction instead of per session.
    """

    def __init__(
        self,
        database: Database,
        *,
        poke: Callable[[], None],
        max_event_size: int,
        pooled: bool,
        idle_in_transaction_timeout_ms: int,
    ) -> None:
        self.database = database
        self.max_event_size = max_event_size
        self._poke = poke
        self._pooled = pooled
        self._idle_in_transaction_timeout_ms = idle_in_transaction_timeout_ms

    async def audited(
        self,
        actor: Actor,
        action: str,
        target: str,
        parameters: dict[str, Any],
        body: AdminBody[T],
    ) -> T:
        """See `PostgresEventStore.audited`."""
        try:
            async with self.database.transaction() as conn:
                if self._pooled:
                    timeout = str(self._idle_in_transaction_timeout_ms)
                    await conn.execute(_TRANSACTION_TIMEOUT, {"timeout_ms": timeout})
                await conn.execute(SYSTEM_APPEND_LOCK)
                done = await body(conn)
                record = audit_event(actor, action, target, parameters, done.outcome)
                await append_system(
                    conn, [*((LIFECYCLE_STREAM, e) for e in done.events), (AUDIT_STREAM, record)]
                )
        except IljiError as error:
            await self._audit_failure(actor, action, target, parameters, error)
            raise
        self._poke()
        return done.value

    async def append_system_stream(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> int:
        """See `PostgresEventStore.append_system_stream`."""
        check_appendable_system_stream(stream)
        expected = validate_expected_version(expected_version)
        validate_events(events)
        for i, event in enumerate(events):
            encode_event(event, i, self.max_event_size)  # checked here, encoded by append_system
        async with self.database.transaction() as conn:
            await conn.execute(SYSTEM_APPEND_LOCK)
            version = await current_version(conn, stream)
            if not expected_version_holds(expected, version):
                raise version_conflict(stream, expected, version)
            await append_system(conn, [(stream, event) for event in events])
        return version + len(events)

    async def _audit_failure(
        self, actor: Actor, action: str, target: str, parameters: dict[str, Any], error: IljiError
    ) -> None:
        if isinstance(error, StoreUnavailable):
            return  # nothing was changed, and nothing can be written either
        record = audit_event(actor, action, target, parameters, error.code, error.message)
        try:
            async with self.database.transaction() as conn:
                await append_system(conn, [(AUDIT_STREAM, record)])
        except IljiError as failed:
            log.warning(
                "cannot audit a failed admin action", extra={"action": action, "error": failed.message}
            )
            return
        self._poke()
