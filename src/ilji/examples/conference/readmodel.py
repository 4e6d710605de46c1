"""The seat-availability read model: how many seats each conference has left, for listing pages.

It is built from the events alone, so it can be dropped and rebuilt at any time, and it lags
the streams by however long its runner takes to catch up (commands never read it: they decide
on the conference's own stream).
"""

from __future__ import annotations

from dataclasses import dataclass

from ilji import RecordedEvent
from ilji.examples.conference.domain import ConferenceCreated, ReservationCancelled, SeatsReserved, events


@dataclass(slots=True)
class Availability:
    """One conference's line in the read model."""

    name: str
    seats: int
    reserved: int = 0

    @property
    def available(self) -> int:
        """Seats left."""
        return self.seats - self.reserved


class SeatAvailability:
    """An `InProcessProjection`: conference id → seats and reservations, in memory."""

    name = "conference_seat_availability"
    types = events.names([ConferenceCreated, SeatsReserved, ReservationCancelled])

    def __init__(self) -> None:
        self.conferences: dict[str, Availability] = {}
        self.position = 0

    async def handle(self, event: RecordedEvent) -> None:
        """Update the line of the event's conference (events seen before are skipped)."""
        if event.position <= self.position or event.category != "conference":
            return  # redelivered after a restart: already counted
        self.position = event.position
        conference_id = event.stream.split("-", 1)[1]
        match events.decode(event):
            case ConferenceCreated(name, seats):
                self.conferences[conference_id] = Availability(name, seats)
            case SeatsReserved(_, quantity):
                self.conferences[conference_id].reserved += quantity
            case ReservationCancelled(_, quantity):
                self.conferences[conference_id].reserved -= quantity

    async def reset(self) -> None:
        """Forget everything (before a rebuild)."""
        self.conferences.clear()
        self.position = 0
