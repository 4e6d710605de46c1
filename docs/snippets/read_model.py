"""A projection: a read model kept up to date by following the global log."""

import asyncio
from collections import defaultdict

from ilji import ANY, MemoryEventStore, NewEvent, RecordedEvent


class SeatsLeft:
    """Seats left per conference: a query-friendly view derived only from events."""

    def __init__(self) -> None:
        self.seats: dict[str, int] = defaultdict(int)
        self.position = 0  # the checkpoint: the last position this view has applied

    def apply(self, event: RecordedEvent) -> None:
        if event.position <= self.position:
            return  # already applied: handling an event twice changes nothing (idempotent)
        if event.type == "ConferenceCreated":
            self.seats[event.stream] = event.data["seats"]
        elif event.type == "SeatsReserved":
            self.seats[event.stream] -= event.data["quantity"]
        elif event.type == "ReservationCancelled":
            self.seats[event.stream] += event.data["quantity"]
        self.position = event.position


async def project(store: MemoryEventStore, view: SeatsLeft, until: int) -> None:
    """Catch up from the view's checkpoint, then apply new events as they come.

    A real projector runs forever; this one returns at position `until` so the example ends.
    """
    async for event in store.follow(after=view.position, category="conference"):
        view.apply(event)
        if view.position >= until:
            return


async def main() -> None:
    store = MemoryEventStore()
    view = SeatsLeft()
    await store.append("conference-1", [NewEvent("ConferenceCreated", {"seats": 10})], ANY)

    task = asyncio.create_task(project(store, view, until=4))
    await store.append("conference-1", [NewEvent("SeatsReserved", {"quantity": 3})], ANY)
    await store.append("order-9", [NewEvent("OrderPlaced", {"total": 5})], ANY)  # another category
    await store.append("conference-1", [NewEvent("ReservationCancelled", {"quantity": 1})], ANY)

    # The view is eventually consistent: it catches up shortly after the appends.
    await asyncio.wait_for(task, timeout=2)
    print(dict(view.seats))  # {'conference-1': 8}
    assert view.seats["conference-1"] == 8

    # Rebuilding the view is replaying the log into an empty one.
    rebuilt = SeatsLeft()
    for event in await store.read_category("conference"):
        rebuilt.apply(event)
    assert rebuilt.seats == view.seats


if __name__ == "__main__":
    asyncio.run(main())
