"""Streams, versions and categories with the in-memory store (same contract as PostgreSQL)."""

import asyncio

from ilji import NO_STREAM, MemoryEventStore, NewEvent


async def main() -> None:
    store = MemoryEventStore()
    # One stream per conference; the part before the first "-" is the stream's category.
    await store.append("conference-42", [NewEvent("ConferenceCreated", {"seats": 100})], NO_STREAM)
    result = await store.append(
        "conference-42",
        [
            NewEvent("SeatsReserved", {"reservation_id": "r1", "quantity": 2}),
            NewEvent("SeatsReserved", {"reservation_id": "r2", "quantity": 3}),
        ],
        expected_version=1,  # the stream holds one event, so its version is 1
    )
    assert (result.first_version, result.last_version) == (2, 3)

    events = await store.read_stream("conference-42")
    for event in events:
        print(event.version, event.type, event.data, event.category)
    # 1 ConferenceCreated {'seats': 100} conference
    # 2 SeatsReserved {'reservation_id': 'r1', 'quantity': 2} conference
    # 3 SeatsReserved {'reservation_id': 'r2', 'quantity': 3} conference
    assert [e.version for e in events] == [1, 2, 3]
    assert await store.stream_version("conference-42") == 3
    assert await store.stream_version("conference-7") == 0  # a stream without events


if __name__ == "__main__":
    asyncio.run(main())
