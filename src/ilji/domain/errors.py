"""Ilji's error hierarchy: every failure a caller can see is one of these.

The store translates database driver exceptions into these classes in one place
(`ilji.store.database`), and the server maps each class to one HTTP status in one table.
"""

from __future__ import annotations

from typing import Any


class IljiError(Exception):
    """The root of every error Ilji raises on purpose."""

    #: A short, stable machine name for the kind of error (used in problem+json `type`).
    code = "ilji-error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return self.message


class ValidationError(IljiError):
    """Input that Ilji refuses before anything is stored; `field` names what is wrong."""

    code = "validation-error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)
        self.field = field


class ConflictError(IljiError):
    """The request is well-formed but conflicts with what is stored."""

    code = "conflict"


class WrongExpectedVersion(ConflictError):
    """The stream's version is not what the caller expected (optimistic concurrency)."""

    code = "wrong-expected-version"

    def __init__(self, stream: str, expected: int | str, actual: int, *, part: int | None = None) -> None:
        where = "" if part is None else f"parts[{part}]: "
        details: dict[str, Any] = {"stream": stream, "expected": expected, "actual": actual}
        if part is not None:
            details["part"] = part  # which part of a multi-stream append (append_streams)
        super().__init__(
            f"{where}stream {stream!r}: expected version {expected}, but the stream is at version {actual}",
            **details,
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual
        self.part = part


class DuplicateEventId(ConflictError):
    """An event id is already stored, and this append is not an exact retry of that batch."""

    code = "duplicate-event-id"

    def __init__(self, stream: str, event_ids: list[str], reason: str, *, part: int | None = None) -> None:
        where = "" if part is None else f"parts[{part}]: "
        details: dict[str, Any] = {"stream": stream, "event_ids": event_ids}
        if part is not None:
            details["part"] = part  # which part of a multi-stream append (append_streams)
        super().__init__(
            f"{where}stream {stream!r}: event id(s) {', '.join(event_ids)} already stored ({reason}); "
            "nothing was appended",
            **details,
        )
        self.stream = stream
        self.event_ids = event_ids
        self.reason = reason
        self.part = part


class StreamNotFound(IljiError):
    """The stream has no events."""

    code = "stream-not-found"

    def __init__(self, stream: str) -> None:
        super().__init__(f"stream {stream!r} has no events", stream=stream)
        self.stream = stream


class StreamDeleted(StreamNotFound):
    """The stream was soft-deleted: reads find nothing, its events are kept and restorable."""

    code = "stream-deleted"

    def __init__(self, stream: str, deleted_version: int) -> None:
        IljiError.__init__(
            self,
            f"stream {stream!r} was deleted at version {deleted_version}; its events are kept "
            "and an admin can restore it",
            stream=stream,
            deleted_version=deleted_version,
        )
        self.stream = stream
        self.deleted_version = deleted_version


class AppendOnlyViolation(IljiError):
    """Someone tried to change or delete stored events; the database refused."""

    code = "append-only"


class PositionLimitReached(IljiError):
    """The cluster's transaction ids passed 2**41, so positions would pass 2**53: nothing is
    appended any more. Not retryable; see docs/en/operations.md."""

    code = "position-limit"


class StoreUnavailable(IljiError):
    """The database cannot be reached or is shutting down; the operation may be retried."""

    code = "store-unavailable"


class SchemaError(IljiError):
    """The database schema is missing, too new, or in a state Ilji cannot use."""

    code = "schema-error"


class SchemaTooNew(SchemaError):
    """The database schema was migrated by a newer Ilji: this code refuses to write to it."""

    code = "schema-too-new"

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"the database schema is at version {found}, newer than this Ilji knows ({known}): "
            "a newer Ilji migrated it, and this one refuses to write to it; upgrade Ilji",
            found=found,
            known=known,
        )


class ConfigurationError(IljiError):
    """A setting is wrong (a value, a password, a data directory): retrying will not help.

    `setting` names it as the user gave it: an environment variable or a command-line flag.
    """

    code = "configuration"

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}", setting=setting)
        self.setting = setting


class EmbeddedPostgresError(IljiError):
    """The embedded PostgreSQL server could not be started or used."""

    code = "embedded-postgres"
