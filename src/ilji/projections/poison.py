"""Poison events: retry an event the handler fails on, then park it (or stop), and replay it later.

An event whose handler fails is tried again after a growing pause (`retry_delay`), up to the
projection's `max_attempts`. Then its `on_poison` policy applies: "park" records it in
ilji.parked_events and moves the checkpoint past it in the same fenced transaction (parked and
skipped together, or neither), "stop" marks the partition failed until an operator resumes it.
An operator's replay request (`ilji.projections.admin.replay_parked`) applies a parked event
once more, in a transaction that also marks it replayed, so that it is applied at most once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from ilji.domain.events import RecordedEvent
from ilji.projections import sql
from ilji.projections.failures import HandlerFailed, run_handler
from ilji.projections.lease import Interrupted, Interruption, Lease, LeaseKeeper
from ilji.projections.projection import Projection, retry_delay

log = logging.getLogger(__name__)

_PARK = sql.load("park")
_PENDING_REPLAYS = sql.load("pending_replays")
_MARK_REPLAYED = sql.load("mark_replayed")
_REPLAY_FAILED = sql.load("replay_failed")


class _AlreadyReplayed(Exception):
    """mark_replayed.sql matched nothing: another replay of the same request came first."""


class PoisonEvents:
    """The attempts on failing events of one partition, their parking, and replays."""

    def __init__(
        self,
        keeper: LeaseKeeper,
        projection: Projection,
        read: Callable[[int, int], Awaitable[list[RecordedEvent]]],
    ) -> None:
        self.keeper = keeper
        self.projection = projection
        # The projection's own read of the log (its category and types, `$` ones included),
        # so that every event it can park it can also find again.
        self._read = read
        self._attempts: dict[uuid.UUID, int] = {}

    def failed_before(self, event: RecordedEvent) -> bool:
        """True when the handler failed on `event` and it has not succeeded since."""
        return event.id in self._attempts

    def succeeded(self, event: RecordedEvent) -> None:
        """The handler applied `event`: forget its failed attempts."""
        self._attempts.pop(event.id, None)

    async def failed(self, lease: Lease, event: RecordedEvent, failure: HandlerFailed) -> None:
        """The handler failed on `event`: pause before the next attempt, or apply the poison policy.

        Raises `Interrupted` when the stop policy failed the partition.
        """
        p, keeper = self.projection, self.keeper
        attempt = self._attempts.get(event.id, 0) + 1
        self._attempts[event.id] = attempt
        # Stored, logged and shown to readers of the status: never row data (see failures.py).
        error = failure.error
        where = keeper.extra(event_id=str(event.id), position=event.position)
        if attempt < p.max_attempts:
            keeper.metrics.retries += 1
            log.warning("handler failed, will retry", extra={**where, "attempt": attempt, "error": error})
            await lease.sleep(retry_delay(p, attempt))
            return
        self._attempts.pop(event.id, None)
        if p.on_poison == "stop":
            log.error("poison event: partition stopped", extra={**where, "error": error})
            await keeper.fail(lease, f"event {event.id} at position {event.position}: {error}")
            raise Interrupted(Interruption.FAILED)
        async with keeper.transaction(lease) as tx:
            await tx.conn.execute(
                _PARK,
                {
                    **keeper.params,
                    "position": event.position,
                    "event_id": event.id,
                    "stream": event.stream,
                    "type": event.type,
                    "error": error,
                    "attempts": attempt,
                },
            )
            # Moving the checkpoint past the event in the same transaction: parked and
            # skipped together, or neither.
            await tx.advance(event.position, 0, "catching_up")
        if not tx.committed:
            return
        keeper.metrics.parked += 1
        log.error("poison event parked", extra={**where, "attempts": attempt, "error": error})

    async def replay(self, lease: Lease) -> None:
        """Apply the parked events an operator asked to replay, each once (fenced)."""
        keeper = self.keeper
        async with keeper.database.connection() as conn:
            cur = await conn.execute(_PENDING_REPLAYS, keeper.params)
            requests = await cur.fetchall()
        for event_id, position, _attempts in requests:
            lease.check()
            page = await self._read(position - 1, 1)
            if not page or page[0].id != event_id:
                await self._replay_failed(event_id, "the event is not in the log at its position")
                continue
            event = page[0]
            try:
                async with keeper.transaction(lease) as tx:
                    await run_handler(tx.conn, self.projection.apply(tx.conn, [event], keeper.context(lease)))
                    cur = await tx.conn.execute(_MARK_REPLAYED, {**keeper.params, "event_id": event_id})
                    if cur.rowcount != 1:
                        raise _AlreadyReplayed
            except HandlerFailed as failure:
                await self._replay_failed(event_id, failure.error)
                continue
            except _AlreadyReplayed:
                await self._replay_failed(event_id, "already replayed")
                continue
            keeper.metrics.replayed += 1
            log.info("parked event replayed", extra=keeper.extra(event_id=str(event_id), position=position))

    async def _replay_failed(self, event_id: uuid.UUID, error: str) -> None:
        async with self.keeper.database.connection() as conn:
            await conn.execute(_REPLAY_FAILED, {**self.keeper.params, "event_id": event_id, "error": error})
        log.error(
            "replay of a parked event failed", extra=self.keeper.extra(event_id=str(event_id), error=error)
        )
