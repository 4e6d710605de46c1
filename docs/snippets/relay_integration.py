"""Integration events: a public SeatsReserved.v1 mapped from internal events, and an idempotent consumer."""

import asyncio
import json
from typing import Any

from ilji import ANY, MemoryEventStore, NewEvent, RecordedEvent
from ilji.relay import IntegrationEvents

# --8<-- [start:mapping]
integration = IntegrationEvents("conference_relay", subject_prefix="ilji", categories=["conference"])


@integration.map("SeatsReserved", to="SeatsReserved", version=1, personal=["attendee_email"])
def seats_reserved(event: RecordedEvent) -> dict[str, Any] | None:
    data = event.data
    seats = data["quantity"] if "quantity" in data else data["seats"]  # internal schema 2 or 1
    if seats == 0:
        return None  # nothing happened that other services need to know
    return {
        "conference_id": event.stream.removeprefix("conference-"),
        "reservation_id": data["reservation_id"],
        "seats": seats,
        "attendee_email": data.get("attendee_email"),  # declared personal: never published
    }


# --8<-- [end:mapping]


# --8<-- [start:consumer]
class SeatsBoard:
    """A consumer in another service: applies each public event once, whatever is redelivered."""

    def __init__(self) -> None:
        # In a real service: a table with a unique key on the id, written in the same
        # transaction as the effect, so the check and the effect commit together.
        self.applied: set[str] = set()
        self.reserved = 0

    def handle(self, headers: dict[str, str], payload: dict[str, Any]) -> None:
        event_id = headers["Nats-Msg-Id"]  # the Ilji event id: the same on every copy
        if event_id in self.applied:
            return  # a redelivery, or a republish older than JetStream's duplicate window
        self.reserved += payload["seats"]
        self.applied.add(event_id)


# --8<-- [end:consumer]


async def main() -> None:
    store = MemoryEventStore()
    await store.append(
        "conference-7",
        [
            NewEvent("ConferenceCreated", {"name": "PyCon KR", "seats": 100}),  # internal only
            NewEvent("SeatsReserved", {"reservation_id": "r1", "seats": 2}),  # schema 1
            NewEvent("SeatsReserved", {"reservation_id": "r2", "quantity": 3, "attendee_email": "a@b.kr"}),
        ],
        ANY,
    )
    messages = [m for e in await store.read_stream("conference-7") if (m := integration.to_message(e))]
    assert [m.subject for m in messages] == ["ilji.conference.SeatsReserved.v1"] * 2
    assert all(b"a@b.kr" not in m.payload for m in messages)
    assert messages[0].headers["Ilji-Event"] == "SeatsReserved.v1"

    board = SeatsBoard()
    for message in [*messages, messages[1]]:  # the last one delivered twice
        board.handle(message.headers, json.loads(message.payload))
    assert board.reserved == 5


if __name__ == "__main__":
    asyncio.run(main())
