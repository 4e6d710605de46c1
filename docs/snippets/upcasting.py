"""Schema evolution: old events stay as they were stored; readers upcast them on read."""

import asyncio
from typing import Any

from ilji import ANY, MemoryEventStore, NewEvent


def upcast(event_type: str, data: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 of SeatsReserved called the number `seats`; schema 2 calls it `quantity`."""
    if event_type == "SeatsReserved" and metadata.get("schema", 1) == 1:
        return {k: v for k, v in data.items() if k != "seats"} | {"quantity": data["seats"]}
    return data


async def main() -> None:
    store = MemoryEventStore()
    await store.append("conference-1", [NewEvent("SeatsReserved", {"seats": 2}, {"schema": 1})], ANY)
    await store.append("conference-1", [NewEvent("SeatsReserved", {"quantity": 3}, {"schema": 2})], ANY)

    events = await store.read_stream("conference-1")
    total = sum(upcast(e.type, e.data, e.metadata)["quantity"] for e in events)
    assert total == 5
    assert events[0].data == {"seats": 2}  # the stored fact itself never changes


if __name__ == "__main__":
    asyncio.run(main())
