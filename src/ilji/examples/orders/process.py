"""The order-credit process manager: reacts to events of both sides by sending commands.

It holds no state of its own beyond its position in the global log (kept by its runner's
checkpoint store): everything it needs is in the events it reacts to, and each command it
sends is idempotent, so handling an event twice (a redelivery after a crash, before the
checkpoint moved) appends nothing the second time.
"""

from __future__ import annotations

import logging

from ilji import EventStore, RecordedEvent
from ilji.app import CheckpointStore, CommandContext, EventSchemaError, ProjectionRunner
from ilji.examples.orders.domain import (
    ApproveOrder,
    CreditLimitExceeded,
    CreditReserved,
    CustomerNotFound,
    OrderPlaced,
    RejectOrder,
    ReserveCredit,
    customer_repository,
    events,
    order_repository,
)

log = logging.getLogger(__name__)


class OrderCreditProcess:
    """An `InProcessProjection` that turns OrderPlaced into ReserveCredit, and the answer into a decision."""

    name = "orders_credit_process"
    types = events.names([OrderPlaced, CreditReserved, CreditLimitExceeded])

    def __init__(self, store: EventStore) -> None:
        self.orders = order_repository(store, max_retries=20)
        self.customers = customer_repository(store, max_retries=20)
        self.handled = 0
        self.set_aside: list[str] = []

    def _decode(self, event: RecordedEvent) -> object | None:
        """The typed event, or None for one this domain cannot read.

        Anyone may append an `OrderPlaced` to the log (the README's first example does, with no
        customer). Such an event is not an order of this domain: it is logged and set aside
        instead of stopping every order behind it. Under `ilji worker` a failing event is parked
        for a later replay instead.
        """
        try:
            return events.decode(event)
        except EventSchemaError as exc:
            log.warning("event set aside", extra={"event_id": str(event.id), "reason": str(exc)})
            self.set_aside.append(str(event.id))
            return None

    async def handle(self, event: RecordedEvent) -> None:
        """React to one event with at most one command; a repeat sends a command that does nothing."""
        context = CommandContext.caused_by(event, user="orders-credit-process")
        typed = self._decode(event)
        match typed:
            case OrderPlaced(customer_id, total):
                order_id = event.stream.split("-", 1)[1]
                try:
                    await self.customers.handle(customer_id, ReserveCredit(order_id, total), context)
                except CustomerNotFound:
                    await self.orders.handle(order_id, RejectOrder("unknown customer"), context)
            case CreditReserved(order_id, _):
                await self.orders.handle(order_id, ApproveOrder(), context)
            case CreditLimitExceeded(order_id, amount, available):
                reason = f"credit limit exceeded: {amount} asked, {available} available"
                await self.orders.handle(order_id, RejectOrder(reason), context)
            case _:
                return
        self.handled += 1


def runner(
    store: EventStore, checkpoints: CheckpointStore, process: OrderCreditProcess | None = None
) -> ProjectionRunner:
    """The process manager's runner: only the three event types it reacts to."""
    process = process or OrderCreditProcess(store)
    return ProjectionRunner(store, process, checkpoints, types=process.types)
