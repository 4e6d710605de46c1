"""`ilji demo conference`: the seat-reservation walkthrough, printed step by step."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from ilji import EventStore
from ilji.app import CommandContext, MemoryCheckpointStore, ProjectionRunner
from ilji.examples.conference.domain import (
    CancelReservation,
    CreateConference,
    ReserveSeats,
    SeatsUnavailable,
    repository,
)
from ilji.examples.conference.readmodel import SeatAvailability


async def run_demo(store: EventStore, print_fn: Callable[[str], None] = print) -> None:
    """Create a conference, race 30 reservations for 10 seats, cancel one, show the read model."""
    conferences = repository(store, max_retries=30)
    conference_id = f"pycon-{uuid.uuid4().hex[:6]}"
    stream = conferences.stream(conference_id)
    say = print_fn

    say("Conference seats — Microsoft's Event Sourcing pattern example")
    say("")
    say(f"1. Create a conference with 10 seats. Its events go to the stream {stream!r}.")
    await conferences.handle(
        conference_id, CreateConference("PyCon Korea", 10), CommandContext(user="organiser")
    )

    say("2. 30 attendees ask for one seat each, all at the same time.")
    say("   Each request loads the stream, decides, and appends expecting the version it loaded;")
    say("   when another request appended first, it reloads and decides again.")

    async def attempt(n: int) -> str:
        try:
            result = await conferences.handle(
                conference_id, ReserveSeats(f"r{n:02d}", 1), CommandContext(user=f"attendee{n}")
            )
        except SeatsUnavailable:
            return "refused"
        return f"reserved after {result.attempts} attempt(s)"

    outcomes = await asyncio.gather(*(attempt(n) for n in range(30)))
    reserved = [o for o in outcomes if o.startswith("reserved")]
    say(f"   {len(reserved)} reserved, {outcomes.count('refused')} refused — never more than the 10 seats.")
    retried = sum(1 for o in reserved if not o.startswith("reserved after 1 "))
    say(f"   {retried} of the successful requests lost a race at least once and retried.")

    first = next(f"r{n:02d}" for n, o in enumerate(outcomes) if o.startswith("reserved"))
    say(f"3. Reservation {first} is cancelled. Nothing is deleted: a ReservationCancelled event")
    say("   (a compensating event) gives the seat back, and the history keeps both facts.")
    await conferences.handle(conference_id, CancelReservation(first), CommandContext(user="organiser"))
    again = await conferences.handle(conference_id, CancelReservation(first))
    say(f"   Cancelling it again records nothing ({len(again.events)} events): commands are idempotent.")

    say("4. The seat-availability read model catches up from the global log:")
    availability = SeatAvailability()
    runner = ProjectionRunner(store, availability, MemoryCheckpointStore(), category="conference")
    await runner.catch_up()
    line = availability.conferences[conference_id]
    say(f"   {line.name}: {line.seats} seats, {line.reserved} reserved, {line.available} available.")

    say("5. The stream's history, each event with the seats left after it:")
    for entry in await conferences.history(conference_id):
        user = entry.recorded.metadata.get("user", "?")
        say(
            f"   v{entry.recorded.version:<3} {entry.recorded.type:<21} by {user:<11}"
            f" → {entry.state.available} available"
        )
    state_at_5 = await conferences.state_at(conference_id, version=5)
    say(f"6. A temporal query: at version 5 there were {state_at_5.state.available} seats available.")
