"""Temporal queries: the state as it was at a version or at a moment."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from ilji import ANY, MemoryEventStore, NewEvent, RecordedEvent


def fold(events: list[RecordedEvent]) -> dict[str, Any]:
    """Where a ship is and what it carries, from its events."""
    state: dict[str, Any] = {"port": None, "cargo": []}
    for event in events:
        if event.type == "ShipArrived":
            state["port"] = event.data["port"]
        elif event.type == "ShipDeparted":
            state["port"] = "at sea"
        elif event.type == "CargoLoaded":
            state["cargo"] = [*state["cargo"], event.data["cargo"]]
    return state


async def main() -> None:
    clock = [datetime(2005, 11, 1, tzinfo=UTC)]
    store = MemoryEventStore(clock=lambda: clock[0])  # a test clock, to show time on the page
    for event in [
        NewEvent("ShipArrived", {"port": "San Francisco"}),
        NewEvent("CargoLoaded", {"cargo": "books"}),
        NewEvent("ShipDeparted", {"port": "San Francisco"}),
        NewEvent("ShipArrived", {"port": "Vancouver"}),
    ]:
        await store.append("ship-king-roy", [event], ANY)
        clock[0] += timedelta(days=1)

    history = await store.read_stream("ship-king-roy")
    print(fold(history))  # {'port': 'Vancouver', 'cargo': ['books']}

    # As of version 2, and as of the end of 2 November 2005:
    assert fold([e for e in history if e.version <= 2]) == {"port": "San Francisco", "cargo": ["books"]}
    moment = datetime(2005, 11, 3, tzinfo=UTC)
    assert fold([e for e in history if e.recorded_at < moment])["port"] == "San Francisco"
    assert fold([e for e in history if e.recorded_at <= moment])["port"] == "at sea"


if __name__ == "__main__":
    asyncio.run(main())
