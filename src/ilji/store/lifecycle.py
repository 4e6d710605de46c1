"""Stream lifecycle rules: soft delete, truncate-before and per-category retention.

Events are never changed or removed: a rule only hides events from readers, and every change
of a rule is recorded as events (`$lifecycle` for what changed, `$audit` for who changed it).
This module holds the rules' shapes and decides, from the current state and a request, what
the new state is and which `$lifecycle` event records it; the PostgreSQL store and its
in-memory twin both use it, so they agree. See docs/en/lifecycle.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ilji.domain.errors import StreamDeleted, StreamNotFound, ValidationError
from ilji.domain.events import MAX_SAFE_POSITION, NewEvent
from ilji.domain.shapes import utc_text
from ilji.domain.validation import validate_category, validate_stream_name

#: The longest retention age accepted: a hundred years (in seconds).
MAX_RETENTION_SECONDS = 100 * 366 * 24 * 3600

# Event types of the $lifecycle stream.
STREAM_DELETED = "StreamDeleted"
STREAM_RESTORED = "StreamRestored"
STREAM_TRUNCATED = "StreamTruncated"
RETENTION_SET = "CategoryRetentionSet"
RETENTION_CLEARED = "CategoryRetentionCleared"
EVENTS_SCAVENGED = "EventsScavenged"


@dataclass(frozen=True, slots=True)
class StreamLifecycle:
    """A stream's lifecycle: its version (all events, hidden or not) and its rules."""

    stream: str
    #: Events ever appended; appends keep counting from here whatever is hidden.
    version: int
    #: Versions below this are hidden (0: none).
    truncate_before: int = 0
    #: The stream's version when it was soft-deleted (None: not deleted, or restored).
    deleted_version: int | None = None
    deleted_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        """True while reads answer "deleted": soft-deleted and nothing appended since."""
        return self.deleted_version is not None and self.version <= self.deleted_version

    def check_readable(self) -> None:
        """For a read that found no events: `StreamNotFound` if nothing was ever appended,
        `StreamDeleted` if the stream is soft-deleted (an admin can restore it)."""
        if self.version == 0:
            raise StreamNotFound(self.stream)
        if self.deleted and self.deleted_version is not None:
            raise StreamDeleted(self.stream, self.deleted_version)

    @property
    def first_visible_version(self) -> int:
        """The lowest version readers may see (higher than `version` when none is visible)."""
        return max(self.truncate_before, (self.deleted_version or 0) + 1, 1)

    @property
    def has_rule(self) -> bool:
        """True when the stream needs a rule row (something is hidden, or may be)."""
        return self.truncate_before > 1 or self.deleted_version is not None

    def as_json(self) -> dict[str, Any]:
        """The state as the HTTP API and `ilji streams ... --json` show it."""
        return {
            "stream": self.stream,
            "version": self.version,
            "deleted": self.deleted,
            "deleted_version": self.deleted_version,
            "deleted_at": utc_text(self.deleted_at) if self.deleted_at else None,
            "truncate_before": self.truncate_before,
            "first_visible_version": self.first_visible_version,
        }


@dataclass(frozen=True, slots=True)
class Retention:
    """A category's retention: events older than `max_age` or beyond the newest `max_count`
    of their stream are hidden."""

    category: str
    max_age: timedelta | None = None
    max_count: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The rule as the HTTP API shows it."""
        return {
            "category": self.category,
            "max_age_seconds": int(self.max_age.total_seconds()) if self.max_age is not None else None,
            "max_count": self.max_count,
        }


@dataclass(frozen=True, slots=True)
class LifecyclePlan:
    """What a stream lifecycle action decided: the new state, and the `$lifecycle` event that
    records the change (None when nothing changes)."""

    state: StreamLifecycle
    event: NewEvent | None


def lifecycle_stream_name(stream: object) -> str:
    """Check a stream name for a lifecycle action: Ilji's own `$` streams cannot be hidden."""
    return validate_stream_name(stream)


def lifecycle_category_name(category: object) -> str:
    """Check a category name for a retention rule: not one of Ilji's own `$` categories."""
    name = validate_category(category)
    if name.startswith("$"):
        raise ValidationError("category", "names starting with '$' are reserved for Ilji")
    return name


def _existing(state: StreamLifecycle) -> None:
    if state.version == 0:
        raise StreamNotFound(state.stream)


def plan_delete(state: StreamLifecycle) -> LifecyclePlan:
    """Soft delete: hide every event up to the current version (kept, and restorable)."""
    _existing(state)
    if state.deleted:
        return LifecyclePlan(state, None)
    new = replace(state, deleted_version=state.version, deleted_at=None)
    data = {"stream": state.stream, "version": state.version}
    return LifecyclePlan(new, NewEvent(STREAM_DELETED, data))


def plan_restore(state: StreamLifecycle) -> LifecyclePlan:
    """Undo a soft delete: the events it hid are visible again (unless truncated)."""
    _existing(state)
    if state.deleted_version is None:
        return LifecyclePlan(state, None)
    new = replace(state, deleted_version=None, deleted_at=None)
    data = {"stream": state.stream, "deleted_version": state.deleted_version, "version": state.version}
    return LifecyclePlan(new, NewEvent(STREAM_RESTORED, data))


def plan_truncate(state: StreamLifecycle, before: object) -> LifecyclePlan:
    """Hide versions below `before` (1 shows everything again); at most the version + 1."""
    _existing(state)
    if isinstance(before, bool) or not isinstance(before, int) or before < 1:
        raise ValidationError("before", "must be an integer >= 1")
    if before > state.version + 1:
        raise ValidationError(
            "before",
            f"must be at most the stream's version + 1 ({state.version + 1}), got {before}",
        )
    current = max(state.truncate_before, 1)
    if before == current:
        return LifecyclePlan(state, None)
    new = replace(state, truncate_before=0 if before == 1 else before)
    data = {"stream": state.stream, "before": before, "previous_before": current, "version": state.version}
    return LifecyclePlan(new, NewEvent(STREAM_TRUNCATED, data))


def check_retention(max_age_seconds: object, max_count: object) -> None:
    """Check a retention request: at least one rule, each a positive integer in range."""
    if max_age_seconds is None and max_count is None:
        raise ValidationError("retention", "give max_age_seconds, max_count or both (clear it instead)")
    for field, value, top in (
        ("max_age_seconds", max_age_seconds, MAX_RETENTION_SECONDS),
        ("max_count", max_count, MAX_SAFE_POSITION),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ValidationError(field, f"must be an integer from 1 to {top}")


def retention_event(old: Retention | None, new: Retention | None, category: str) -> NewEvent | None:
    """The `$lifecycle` event of a retention change (None when nothing changes)."""
    if old == new:
        return None
    if new is None:
        return NewEvent(RETENTION_CLEARED, {"category": category})
    return NewEvent(RETENTION_SET, new.as_json())
