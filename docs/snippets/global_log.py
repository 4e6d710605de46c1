"""The global log: every stream's events in one order, read by position."""

import asyncio
import itertools

from ilji import ANY, MemoryEventStore, NewEvent


async def main() -> None:
    store = MemoryEventStore()
    await store.append("conference-1", [NewEvent("ConferenceCreated", {"seats": 10})], ANY)
    await store.append("order-7", [NewEvent("OrderPlaced", {"total": 30})], ANY)
    await store.append("conference-1", [NewEvent("SeatsReserved", {"quantity": 2})], ANY)

    everything = await store.read_all(after=0, limit=100)
    print([(e.position, e.stream, e.type) for e in everything])
    # [(1, 'conference-1', 'ConferenceCreated'), (2, 'order-7', 'OrderPlaced'),
    #  (3, 'conference-1', 'SeatsReserved')]

    # A reader remembers the last position it handled and asks only for what came after it.
    checkpoint = everything[1].position
    rest = await store.read_all(after=checkpoint)
    assert [e.type for e in rest] == ["SeatsReserved"]

    # One category of the log, and a filter on event types.
    conferences = await store.read_category("conference")
    assert [e.stream for e in conferences] == ["conference-1", "conference-1"]
    orders = await store.read_all(types=["OrderPlaced"])
    assert [e.stream for e in orders] == ["order-7"]
    # Positions grow, but in PostgreSQL they are not consecutive: never compute "the next one".
    assert all(a.position < b.position for a, b in itertools.pairwise(everything))


if __name__ == "__main__":
    asyncio.run(main())
