"""Designing events: intent, not state (Greg Young's shopping cart), and a public event apart."""

import asyncio
from typing import Any

from ilji import ANY, NO_STREAM, MemoryEventStore, NewEvent, RecordedEvent

# --8<-- [start:intent]
# Events that record what the shopper did. A state-shaped design would store one
# `CartUpdated {"items": [...]}` per change instead, and the removals below would be lost.
ADDED, REMOVED, CHECKED_OUT = "ItemAdded", "ItemRemoved", "CartCheckedOut"


def items_in(events: list[RecordedEvent]) -> dict[str, int]:
    """The cart's contents: what the checkout needs."""
    items: dict[str, int] = {}
    for event in events:
        sku = event.data.get("sku", "")
        if event.type == ADDED:
            items[sku] = items.get(sku, 0) + event.data["quantity"]
        elif event.type == REMOVED:
            items[sku] -= event.data["quantity"]
            if not items[sku]:
                del items[sku]
    return items


def removed_before_checkout(events: list[RecordedEvent]) -> set[str]:
    """A question nobody asked when the cart was built, answered from the same events."""
    checked_out = any(e.type == CHECKED_OUT for e in events)
    return {e.data["sku"] for e in events if e.type == REMOVED} if checked_out else set()


# --8<-- [end:intent]


# --8<-- [start:public]
def public_event(event: RecordedEvent) -> NewEvent | None:
    """The integration event other services may rely on, or None: most domain events stay inside.

    The public event is a contract with its own name and version; the cart's internal events can
    change shape freely because no other service reads them.
    """
    if event.type != CHECKED_OUT:
        return None
    data: dict[str, Any] = {"cart": event.stream, "lines": event.data["lines"], "total": event.data["total"]}
    return NewEvent("shop.OrderSubmitted.v1", data, metadata={"causation_id": str(event.id)})


# --8<-- [end:public]


async def main() -> None:
    store = MemoryEventStore()
    cart = "cart-7"
    await store.append(cart, [NewEvent(ADDED, {"sku": "book", "quantity": 1})], NO_STREAM)
    await store.append(cart, [NewEvent(ADDED, {"sku": "lamp", "quantity": 1})], ANY)
    await store.append(cart, [NewEvent(REMOVED, {"sku": "lamp", "quantity": 1})], ANY)
    events = await store.read_stream(cart)
    lines = [{"sku": sku, "quantity": n} for sku, n in items_in(events).items()]
    await store.append(cart, [NewEvent(CHECKED_OUT, {"lines": lines, "total": 12})], ANY)

    events = await store.read_stream(cart)
    assert items_in(events) == {"book": 1}
    assert removed_before_checkout(events) == {"lamp"}  # the lamp is worth a follow-up email

    published = [p for p in map(public_event, events) if p is not None]
    assert [p.type for p in published] == ["shop.OrderSubmitted.v1"]
    assert published[0].data == {"cart": "cart-7", "lines": [{"sku": "book", "quantity": 1}], "total": 12}


if __name__ == "__main__":
    asyncio.run(main())
