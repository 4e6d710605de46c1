"""The conference's public events: what other services may rely on, published by `ilji relay`.

    ilji relay run --mapping ilji.examples.conference.integration:integration --nats-url nats://...

Internally `SeatsReserved` already changed once (schema 1 counted `seats`, schema 2 counts
`quantity`, see `domain.py`). Its public form, `SeatsReserved.v1`, did not: the mapping decodes
the stored event through the registry (which upcasts schema 1) and writes the public shape.
`ConferenceCreated` stays internal: it is not mapped, so it is never published.
"""

from __future__ import annotations

from typing import Any

from ilji import RecordedEvent
from ilji.examples.conference.domain import ReservationCancelled, SeatsReserved, events
from ilji.relay import IntegrationEvents, MappingError

integration = IntegrationEvents("conference_relay", subject_prefix="ilji", categories=["conference"])


def _conference_id(event: RecordedEvent) -> str:
    return event.stream.split("-", 1)[1]


@integration.map("SeatsReserved", to="SeatsReserved", version=1)
def seats_reserved(event: RecordedEvent) -> dict[str, Any]:
    """`ilji.conference.SeatsReserved.v1`: {conference_id, reservation_id, seats}."""
    reserved = events.decode(event)
    if not isinstance(reserved, SeatsReserved):
        raise MappingError(f"event {event.id} is not a SeatsReserved")
    return {
        "conference_id": _conference_id(event),
        "reservation_id": reserved.reservation_id,
        "seats": reserved.quantity,
    }


@integration.map("ReservationCancelled", to="ReservationCancelled", version=1)
def reservation_cancelled(event: RecordedEvent) -> dict[str, Any]:
    """`ilji.conference.ReservationCancelled.v1`: {conference_id, reservation_id, seats}."""
    cancelled = events.decode(event)
    if not isinstance(cancelled, ReservationCancelled):
        raise MappingError(f"event {event.id} is not a ReservationCancelled")
    return {
        "conference_id": _conference_id(event),
        "reservation_id": cancelled.reservation_id,
        "seats": cancelled.quantity,
    }
