"""Errors of the application layer (command handling, serialisation, snapshots)."""

from __future__ import annotations

from ilji.domain.errors import IljiError


class EventSchemaError(IljiError):
    """A stored event or snapshot cannot be turned into its Python type (a missing field, a bad value)."""

    code = "event-schema-error"


class UnknownEventType(EventSchemaError):
    """A stored event's type is not registered, and the registry is set to refuse unknown types."""

    code = "unknown-event-type"

    def __init__(self, event_type: str) -> None:
        super().__init__(f"event type {event_type!r} is not registered", event_type=event_type)
        self.event_type = event_type


class EventFromNewerSchema(EventSchemaError):
    """A stored event was written by newer code (a higher schema version than this code knows).

    Guessing what a newer schema means could silently lose data, so the reader refuses.
    """

    code = "event-from-newer-schema"

    def __init__(self, event_type: str, stored: int, known: int) -> None:
        super().__init__(
            f"event type {event_type!r} is stored with schema version {stored}, but this code knows "
            f"versions up to {known}: deploy the newer code or add its event class",
            event_type=event_type,
            stored=stored,
            known=known,
        )


class RegistryError(IljiError):
    """An event class or upcaster was registered in a way that cannot work (a programming error)."""

    code = "registry-error"
