"""`ilji.domain.shapes`: the one JSON form of Ilji's dataclasses."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from ilji.domain.events import RecordedEvent
from ilji.domain.shapes import event_json, to_json, utc_text


class Colour(enum.Enum):
    RED = "red"


@dataclass(frozen=True)
class Inner:
    at: datetime
    colour: Colour


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    ids: tuple[uuid.UUID, ...] = ()
    extra: dict[str, int] = field(default_factory=dict)
    missing: datetime | None = None


def test_times_are_printed_in_utc_with_a_z_whatever_their_zone() -> None:
    seoul = timezone(timedelta(hours=9))
    assert utc_text(datetime(2026, 12, 7, 22, 0, tzinfo=seoul)) == "2026-12-07T13:00:00Z"
    assert utc_text(datetime(2026, 12, 7, 13, 0, 0, 5, tzinfo=UTC)) == "2026-12-07T13:00:00.000005Z"


def test_nested_dataclasses_enums_uuids_and_mappings_become_json_values() -> None:
    ident = uuid.UUID(int=7)
    value = Outer(
        "a",
        Inner(datetime(2026, 1, 2, tzinfo=UTC), Colour.RED),
        (ident,),
        {"n": 1},
    )
    assert to_json(value) == {
        "name": "a",
        "inner": {"at": "2026-01-02T00:00:00Z", "colour": "red"},
        "ids": [str(ident)],
        "extra": {"n": 1},
        "missing": None,
    }


def test_a_recorded_event_becomes_the_api_object_with_its_time_in_utc() -> None:
    ident = uuid.UUID(int=9)
    seoul = timezone(timedelta(hours=9))
    event = RecordedEvent(
        ident, "order-1", 2, 77, "OrderPaid", '{"amount": 12}', {}, datetime(2026, 12, 7, 22, 0, tzinfo=seoul)
    )
    assert event_json(event) == {
        "id": str(ident),
        "stream": "order-1",
        "version": 2,
        "position": 77,
        "type": "OrderPaid",
        "data": {"amount": 12},
        "metadata": {},
        "recorded_at": "2026-12-07T13:00:00Z",
    }
