"""A guard against event loops: every reaction carries its causation depth, and a limit stops it."""

import asyncio
import uuid
from typing import Any

from ilji import ANY, NO_STREAM, MemoryEventStore, NewEvent, RecordedEvent

# --8<-- [start:guard]
MAX_DEPTH = 8  # far more steps than any real conversation of this domain takes


class CausationLoop(Exception):
    """A chain of reactions went deeper than MAX_DEPTH: most likely two handlers feeding each other."""


def reaction(trigger: RecordedEvent, event_type: str, data: dict[str, Any]) -> NewEvent:
    """An event appended in reaction to `trigger`: same correlation, one step deeper."""
    depth = int(trigger.metadata.get("causation_depth", 0)) + 1
    if depth > MAX_DEPTH:
        raise CausationLoop(f"{event_type} would be step {depth} after {trigger.type} {trigger.id}")
    metadata = {
        "correlation_id": trigger.metadata.get("correlation_id", str(trigger.id)),
        "causation_id": str(trigger.id),
        "causation_depth": depth,
    }
    # Derived id: handling the same trigger twice appends nothing new (an idempotent reaction).
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{trigger.id}/{event_type}")
    return NewEvent(event_type, data, metadata, id=event_id)


# --8<-- [end:guard]


async def main() -> None:
    store = MemoryEventStore()
    await store.append("price-1", [NewEvent("PriceChanged", {"amount": 10})], NO_STREAM)
    # Two handlers that, by a bug, react to each other's events forever.
    loops, position, stopped = 0, 0, ""
    try:
        while True:
            page = await store.read_all(after=position)
            if not page:
                break
            for event in page:
                position = event.position
                answer = "DiscountApplied" if event.type == "PriceChanged" else "PriceChanged"
                await store.append("price-1", [reaction(event, answer, {"amount": 9})], ANY)
                loops += 1
    except CausationLoop as error:
        stopped = str(error)
    assert "step 9" in stopped
    assert loops == MAX_DEPTH  # stopped, with the chain recorded for whoever fixes the bug
    events = await store.read_stream("price-1")
    assert [e.metadata.get("causation_depth", 0) for e in events] == list(range(MAX_DEPTH + 1))
    assert len({e.metadata.get("correlation_id") for e in events[1:]}) == 1  # one conversation


if __name__ == "__main__":
    asyncio.run(main())
