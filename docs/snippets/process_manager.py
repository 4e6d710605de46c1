"""A process manager: order placed → reserve credit → approve or reject, with idempotent steps."""

import asyncio
import uuid
from typing import Any

from ilji import ANY, NO_STREAM, MemoryEventStore, NewEvent, RecordedEvent

#: Event ids derived from the triggering event's id: handling an event twice appends nothing new.
NAMESPACE = uuid.UUID("6f1c3c52-5b8e-4a62-9a53-3a0f2d1e0b7a")


def caused_by(trigger: RecordedEvent, event_type: str, data: dict[str, Any]) -> NewEvent:
    return NewEvent(
        event_type,
        data,
        metadata={"causation_id": str(trigger.id)},
        id=uuid.uuid5(NAMESPACE, f"{trigger.id}:{event_type}"),
    )


def credit_left(events: list[RecordedEvent]) -> int:
    signs = {"CreditLimitSet": 1, "CreditReserved": -1}
    return sum(e.data["amount"] * signs.get(e.type, 0) for e in events)


async def handle(store: MemoryEventStore, event: RecordedEvent) -> None:
    """React to one OrderPlaced; safe to call again with the same event (at-least-once delivery)."""
    if event.type != "OrderPlaced":
        return
    if any(e.type in ("OrderApproved", "OrderRejected") for e in await store.read_stream(event.stream)):
        return  # this order was handled before
    customer, total = f"customer-{event.data['customer']}", event.data["total"]
    history = await store.read_stream(customer)
    # A crash between the two appends below leaves the credit reserved: find it by causation id.
    reserved_before = any(e.metadata.get("causation_id") == str(event.id) for e in history)
    if not reserved_before:
        if total > credit_left(history):
            await store.append(event.stream, [caused_by(event, "OrderRejected", {"reason": "credit"})], ANY)
            return
        reserved = caused_by(event, "CreditReserved", {"amount": total, "order": event.stream})
        await store.append(customer, [reserved], len(history))  # optimistic: the credit we saw
    await store.append(event.stream, [caused_by(event, "OrderApproved", {})], ANY)


async def main() -> None:
    store = MemoryEventStore()
    await store.append("customer-ann", [NewEvent("CreditLimitSet", {"amount": 50})], NO_STREAM)
    await store.append("order-1", [NewEvent("OrderPlaced", {"customer": "ann", "total": 30})], NO_STREAM)
    await store.append("order-2", [NewEvent("OrderPlaced", {"customer": "ann", "total": 30})], NO_STREAM)

    for event in await store.read_all(types=["OrderPlaced"]):
        await handle(store, event)
        await handle(store, event)  # delivered twice: the derived ids make it a no-op

    assert [e.type for e in await store.read_stream("order-1")] == ["OrderPlaced", "OrderApproved"]
    assert [e.type for e in await store.read_stream("order-2")] == ["OrderPlaced", "OrderRejected"]
    assert credit_left(await store.read_stream("customer-ann")) == 20


if __name__ == "__main__":
    asyncio.run(main())
