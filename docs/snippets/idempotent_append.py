"""A retried append with the same event ids is recognised and stored once."""

import asyncio

from ilji import NO_STREAM, DuplicateEventId, MemoryEventStore, NewEvent


async def main() -> None:
    store = MemoryEventStore()
    event = NewEvent("OrderPlaced", {"total": 12})  # its id is fixed when it is created

    first = await store.append("order-1", [event], NO_STREAM)
    # The reply was lost (a timeout, say), so the client sends the same batch again.
    retry = await store.append("order-1", [event], NO_STREAM)
    assert retry.idempotent and retry.first_version == first.first_version
    assert await store.stream_version("order-1") == 1

    # Reusing the id for a different stream is a mistake, not a retry.
    try:
        await store.append("order-2", [event], NO_STREAM)
    except DuplicateEventId as exc:
        print(exc.code)  # duplicate-event-id


if __name__ == "__main__":
    asyncio.run(main())
