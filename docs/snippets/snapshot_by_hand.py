"""A snapshot is a cached fold: state plus the version it was taken at."""

import asyncio

from ilji import ANY, MemoryEventStore, NewEvent


def evolve(reserved: int, event) -> int:
    return reserved + event.data["quantity"] if event.type == "SeatsReserved" else reserved


async def load(store: MemoryEventStore, stream: str, snapshot: tuple[int, int] | None) -> tuple[int, int]:
    """Start from the snapshot (state, version) if there is one and replay only what came after."""
    state, version = snapshot if snapshot else (0, 0)
    while page := await store.read_stream(stream, from_version=version + 1, limit=1000):
        for event in page:
            state, version = evolve(state, event), event.version
    return state, version


async def main() -> None:
    store = MemoryEventStore()
    for _ in range(250):
        await store.append("conference-1", [NewEvent("SeatsReserved", {"quantity": 1})], ANY)

    full = await load(store, "conference-1", None)  # reads 250 events
    snapshot = (200, 200)  # taken earlier, after version 200
    quick = await load(store, "conference-1", snapshot)  # reads 50 events
    assert full == quick == (250, 250)
    # A snapshot is never the source of truth: drop it and the fold gives the same answer.


if __name__ == "__main__":
    asyncio.run(main())
