"""The conference decider: seats are reserved and cancelled against a fixed capacity.

One stream per conference (`conference-<id>`), so every reservation of a conference goes
through one optimistic-concurrency check: two reservations that race for the last seat cannot
both be appended, and the loser is decided again on the new state (and refused).
A cancellation does not delete the reservation: it is a compensating event that gives the seats
back, and the history keeps both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ilji import EventStore, SnapshotStore
from ilji.app import (
    AggregateType,
    CommandRejected,
    DataclassStateCodec,
    Decider,
    DomainView,
    EventRegistry,
    Repository,
    SnapshotPolicy,
)

events = EventRegistry()

# -- events ------------------------------------------------------------------------------------


@events.register
@dataclass(frozen=True, slots=True)
class ConferenceCreated:
    """A conference was opened for reservations with a number of seats."""

    name: str
    seats: int


@events.register(version=2)
@dataclass(frozen=True, slots=True)
class SeatsReserved:
    """Seats were reserved (schema 2; schema 1 called the number `seats`)."""

    reservation_id: str
    quantity: int


@events.upcaster("SeatsReserved", from_version=1)
def _seats_became_quantity(data: dict[str, Any]) -> dict[str, Any]:
    # Version 1 stored {"reservation_id", "seats"}; the field was renamed to say what it counts.
    data["quantity"] = data.pop("seats")
    return data


@events.register
@dataclass(frozen=True, slots=True)
class ReservationCancelled:
    """A reservation was cancelled and its seats given back (a compensating event)."""

    reservation_id: str
    quantity: int


ConferenceEvent = ConferenceCreated | SeatsReserved | ReservationCancelled

# -- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateConference:
    """Open a conference with `seats` seats."""

    name: str
    seats: int


@dataclass(frozen=True, slots=True)
class ReserveSeats:
    """Reserve `quantity` seats under `reservation_id` (repeating it is harmless)."""

    reservation_id: str
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class CancelReservation:
    """Cancel a reservation and free its seats (repeating it is harmless)."""

    reservation_id: str


ConferenceCommand = CreateConference | ReserveSeats | CancelReservation

# -- errors ------------------------------------------------------------------------------------


class ConferenceNotFound(CommandRejected):
    """The conference does not exist."""

    code = "conference-not-found"


class ConferenceAlreadyExists(CommandRejected):
    """A conference with this id exists already, with other details."""

    code = "conference-already-exists"


class SeatsUnavailable(CommandRejected):
    """Not enough seats are left for the reservation."""

    code = "seats-unavailable"


class ReservationNotFound(CommandRejected):
    """No reservation has this id."""

    code = "reservation-not-found"


class InvalidReservation(CommandRejected):
    """The command's numbers make no sense (no seats, or a reused id with another quantity)."""

    code = "invalid-reservation"


# -- state -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conference:
    """What decisions need: the capacity, live reservations and cancelled ones."""

    name: str | None = None
    seats: int = 0
    reservations: dict[str, int] = field(default_factory=dict)
    cancelled: frozenset[str] = frozenset()

    @property
    def exists(self) -> bool:
        """Whether the conference was created."""
        return self.name is not None

    @property
    def reserved(self) -> int:
        """Seats held by live reservations."""
        return sum(self.reservations.values())

    @property
    def available(self) -> int:
        """Seats left."""
        return self.seats - self.reserved


def initial_state() -> Conference:
    """A conference that does not exist yet."""
    return Conference()


def evolve(state: Conference, event: ConferenceEvent) -> Conference:
    """Apply one event."""
    match event:
        case ConferenceCreated(name, seats):
            return replace(state, name=name, seats=seats)
        case SeatsReserved(reservation_id, quantity):
            return replace(state, reservations={**state.reservations, reservation_id: quantity})
        case ReservationCancelled(reservation_id, _):
            remaining = {k: v for k, v in state.reservations.items() if k != reservation_id}
            return replace(state, reservations=remaining, cancelled=state.cancelled | {reservation_id})
    return state


def decide(command: ConferenceCommand, state: Conference) -> list[ConferenceEvent]:
    """What a command means for the conference as it is."""
    match command:
        case CreateConference(name, seats):
            if seats < 1:
                raise InvalidReservation(f"a conference needs at least one seat, not {seats}")
            if state.exists:
                if (state.name, state.seats) == (name, seats):
                    return []  # the same creation again: already done
                raise ConferenceAlreadyExists(f"conference {state.name!r} exists already")
            return [ConferenceCreated(name, seats)]
        case ReserveSeats(reservation_id, quantity):
            if not state.exists:
                raise ConferenceNotFound("no such conference")
            if quantity < 1:
                raise InvalidReservation(f"reserve at least one seat, not {quantity}")
            if reservation_id in state.cancelled:
                raise InvalidReservation(f"reservation {reservation_id!r} was cancelled; use a new id")
            if reservation_id in state.reservations:
                if state.reservations[reservation_id] == quantity:
                    return []  # a retried request: the seats are already held
                raise InvalidReservation(f"reservation {reservation_id!r} exists with another quantity")
            if quantity > state.available:
                raise SeatsUnavailable(
                    f"{quantity} seat(s) asked, {state.available} left",
                    requested=quantity,
                    available=state.available,
                )
            return [SeatsReserved(reservation_id, quantity)]
        case CancelReservation(reservation_id):
            if not state.exists:
                raise ConferenceNotFound("no such conference")
            if reservation_id in state.cancelled:
                return []
            if reservation_id not in state.reservations:
                raise ReservationNotFound(f"no reservation {reservation_id!r}")
            return [ReservationCancelled(reservation_id, state.reservations[reservation_id])]
    raise TypeError(f"not a conference command: {command!r}")


decider: Decider[ConferenceCommand, ConferenceEvent, Conference] = Decider(decide, evolve, initial_state)

conference_type: AggregateType[ConferenceCommand, ConferenceEvent, Conference] = AggregateType(
    "conference",
    decider,
    events,
    SnapshotPolicy(every=50, codec=DataclassStateCodec(Conference, schema_version=1)),
)


def _show(state: Conference) -> dict[str, Any]:
    # The console's time travel shows this: the stored fields and the seats they leave.
    return {
        "name": state.name,
        "seats": state.seats,
        "reserved": state.reserved,
        "available": state.available,
        "reservations": state.reservations,
        "cancelled": sorted(state.cancelled),
    }


#: How the console shows a conference stream version by version (`ilji serve --example conference`).
views = [DomainView(conference_type, describe=_show, title="Conference")]


def repository(
    store: EventStore, snapshots: SnapshotStore | None = None, **options: Any
) -> Repository[ConferenceCommand, ConferenceEvent, Conference]:
    """The conference repository on `store` (options go to `Repository`)."""
    return Repository(store, conference_type, snapshots=snapshots, **options)
