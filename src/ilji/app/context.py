"""What a command carries besides its data: who asked, why, and when (the event metadata).

Every event a command produces gets the same metadata: the command's id, a correlation id (the
conversation it belongs to, shared by everything that follows from one user action), a
causation id (what directly caused it: the command, or the event a process manager reacted
to), the user, and the time from the handler's clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ilji.domain.events import RecordedEvent

Clock = Callable[[], datetime]
"""Returns the current time (tests inject a fixed or stepping clock)."""


def system_clock() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CommandContext:
    """The metadata of one command; `metadata(now)` is what each of its events records."""

    command_id: uuid.UUID = field(default_factory=uuid.uuid4)
    correlation_id: str | None = None
    causation_id: str | None = None
    user: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def caused_by(cls, event: RecordedEvent, *, user: str | None = None) -> CommandContext:
        """The context of a command issued in reaction to `event` (by a process manager).

        The correlation id carries over, so the whole conversation can be found later; the
        causation id is the event's id. The user defaults to the one who caused the event.
        """
        meta = event.metadata
        correlation = meta.get("correlation_id")
        return cls(
            correlation_id=str(correlation) if correlation else str(event.id),
            causation_id=str(event.id),
            user=user if user is not None else meta.get("user"),
        )

    def metadata(self, now: datetime) -> dict[str, Any]:
        """The metadata of the events this command produces, at time `now`."""
        command = str(self.command_id)
        meta: dict[str, Any] = dict(self.extra)
        meta.update(
            command_id=command,
            correlation_id=self.correlation_id or command,
            causation_id=self.causation_id or command,
            time=now.isoformat(),
        )
        if self.user is not None:
            meta["user"] = self.user
        return meta
