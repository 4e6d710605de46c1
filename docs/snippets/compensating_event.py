"""Undoing with a compensating event, and correcting the past by replay."""

import asyncio
from collections.abc import Sequence

from ilji import ANY, MemoryEventStore, NewEvent, RecordedEvent


def balance(events: Sequence[NewEvent | RecordedEvent]) -> int:
    # CreditReleased is the compensating event of CreditReserved: it adds back what that took.
    signs = {"CreditLimitSet": 1, "CreditReserved": -1, "CreditReleased": 1}
    return sum(signs.get(event.type, 0) * event.data["amount"] for event in events)


async def main() -> None:
    store = MemoryEventStore()
    await store.append("customer-1", [NewEvent("CreditLimitSet", {"amount": 100})], ANY)
    await store.append("customer-1", [NewEvent("CreditReserved", {"amount": 30, "order": "o-1"})], ANY)
    # Order o-1 was cancelled: nothing is deleted; a new event gives the credit back.
    await store.append("customer-1", [NewEvent("CreditReleased", {"amount": 30, "order": "o-1"})], ANY)

    events = await store.read_stream("customer-1")
    assert balance(events) == 100
    print([e.type for e in events])  # ['CreditLimitSet', 'CreditReserved', 'CreditReleased']

    # A retroactive correction (the limit was really 120 from the start) is replayed, not edited:
    # fold the history with the corrected first event to see what the state should have been.
    corrected: list[NewEvent | RecordedEvent] = [NewEvent("CreditLimitSet", {"amount": 120}), *events[1:]]
    assert balance(corrected) == 120


if __name__ == "__main__":
    asyncio.run(main())
