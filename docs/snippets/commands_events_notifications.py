"""A command asks, an event records, a notification tells someone else."""

import asyncio
from dataclasses import dataclass

from ilji import ANY, MemoryEventStore, NewEvent


@dataclass(frozen=True)
class ReserveSeats:
    """A command: imperative, may be refused, not stored by Ilji."""

    conference: str
    quantity: int


def decide(command: ReserveSeats, seats_left: int) -> list[NewEvent]:
    """Turn a command into the events it causes, or refuse it."""
    if command.quantity > seats_left:
        raise ValueError(f"only {seats_left} seats left")
    return [NewEvent("SeatsReserved", {"quantity": command.quantity})]  # an event: past tense, a fact


async def main() -> None:
    store = MemoryEventStore()
    await store.append("conference-1", [NewEvent("ConferenceCreated", {"seats": 3})], ANY)

    events = decide(ReserveSeats("conference-1", 2), seats_left=3)
    await store.append("conference-1", events, ANY)
    try:
        decide(ReserveSeats("conference-1", 5), seats_left=1)
    except ValueError as refused:
        print("refused:", refused)  # a refused command leaves no event behind

    # A notification: another part of the system learns that something happened and
    # reacts on its own, here by reading the log after the position it last saw.
    mailer_position = 0
    for event in await store.read_all(after=mailer_position, types=["SeatsReserved"]):
        print(f"send a confirmation for {event.data['quantity']} seats of {event.stream}")
        mailer_position = event.position
    assert mailer_position == 2


if __name__ == "__main__":
    asyncio.run(main())
