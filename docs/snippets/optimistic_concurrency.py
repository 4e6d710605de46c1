"""Optimistic concurrency: decide on what you read, append with the version you read."""

import asyncio

from ilji import NO_STREAM, MemoryEventStore, NewEvent, RecordedEvent, WrongExpectedVersion

CAPACITY = 5


def reserved_seats(events: list[RecordedEvent]) -> int:
    return sum(e.data["quantity"] for e in events if e.type == "SeatsReserved")


async def reserve(store: MemoryEventStore, stream: str, quantity: int) -> bool:
    """Reserve seats if there are enough left; retry when someone else appended first."""
    while True:
        events = await store.read_stream(stream)
        version = len(events)
        if reserved_seats(events) + quantity > CAPACITY:
            return False  # the decision, made on the state this call has seen
        try:
            await store.append(stream, [NewEvent("SeatsReserved", {"quantity": quantity})], version)
            return True
        except WrongExpectedVersion as exc:
            print(f"conflict: expected {exc.expected}, stream is at {exc.actual}; deciding again")


async def main() -> None:
    store = MemoryEventStore()
    stream = "conference-1"
    await store.append(stream, [NewEvent("ConferenceCreated", {"seats": CAPACITY})], NO_STREAM)

    # Two writers read version 1, both decide "4 seats fit", and race to append.
    await store.append(stream, [NewEvent("SeatsReserved", {"quantity": 4})], expected_version=1)
    try:
        await store.append(stream, [NewEvent("SeatsReserved", {"quantity": 4})], expected_version=1)
    except WrongExpectedVersion:
        print("the second writer lost the race: nothing of it was stored")

    # A writer that retries decides again on the new state and refuses to overbook.
    assert await reserve(store, stream, 4) is False
    assert await reserve(store, stream, 1) is True
    assert reserved_seats(await store.read_stream(stream)) == CAPACITY


if __name__ == "__main__":
    asyncio.run(main())
