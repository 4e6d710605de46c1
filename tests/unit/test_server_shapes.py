"""Each JSON body the API builds from a dataclass is the one its OpenAPI model documents:
the same fields in the same order, values the model accepts, and every time in UTC with a `Z`
(whatever the zone the database answered in)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from ilji.app.time_travel import StateChange
from ilji.domain.events import RecordedEvent
from ilji.domain.shapes import event_json, to_json
from ilji.projections.admin import ParkedEvent, PartitionStatus, ProjectionStatus, WorkerStatus
from ilji.projections.shapes import parked_json, partition_json, projection_json
from ilji.server.models import EventOut
from ilji.server.response_models import (
    ChangeOut,
    ParkedEventOut,
    PartitionOut,
    ProjectionOut,
    StatsOut,
    StreamLifecycleOut,
    StreamList,
    WorkerOut,
    listing_json,
    stats_json,
)
from ilji.store.catalog import AppendBucket, StoreStats, StreamListing, StreamSummary
from ilji.store.lifecycle import StreamLifecycle

SEOUL = timezone(timedelta(hours=9))
AT = datetime(2026, 12, 7, 22, 30, 0, 250000, tzinfo=SEOUL)

PARTITION = PartitionStatus(
    "seat_counts", 2, 0, 1, True, "running", 40, 44, 4, False, 0.5, 12.0, 40, "worker-a", 3, AT, 1, None, AT
)
WORKER = WorkerStatus("worker-a", 2, [2], "serving", None, AT)
PROJECTION = ProjectionStatus(
    "seat_counts", 2, None, False, "conference", None, [PARTITION], [], [PARTITION], [WORKER]
)
PARKED = ParkedEvent(
    "seat_counts", 2, 0, 41, uuid.uuid4(), "conference-1", "SeatsReserved", "boom", 3, AT, None, AT
)
LIFECYCLE = StreamLifecycle("order-1", 5, truncate_before=2, deleted_version=5, deleted_at=AT)
LISTING = StreamListing([StreamSummary("order-1", 5, 44, AT)], "order-1")
STATS = StoreStats(
    events=44,
    events_exact=True,
    streams=3,
    streams_exact=True,
    last_position=44,
    last_recorded_at=AT,
    follow_from=40,
    bucket_seconds=60,
    buckets=[AppendBucket(AT, 4)],
    complete_since=AT,
    events_last_minute=4,
)
EVENT = RecordedEvent(uuid.uuid4(), "order-1", 1, 44, "OrderPlaced", {"at": "x"}, {}, AT)

CASES: dict[str, tuple[type[BaseModel], Callable[[], dict[str, Any]]]] = {
    "partition": (PartitionOut, lambda: partition_json(PARTITION)),
    "worker": (WorkerOut, lambda: to_json(WORKER)),
    "projection": (ProjectionOut, lambda: projection_json(PROJECTION)),
    "parked event": (ParkedEventOut, lambda: parked_json(PARKED)),
    "stream lifecycle": (StreamLifecycleOut, lambda: LIFECYCLE.as_json()),
    "stream listing": (StreamList, lambda: listing_json(LISTING)),
    "store stats": (StatsOut, lambda: stats_json(STATS, 60)),
    "change": (ChangeOut, lambda: to_json(StateChange(("seats", 0), "changed", 1, 2))),
    "event": (EventOut, lambda: event_json(EVENT)),
}


def _times(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for item in value.values() for t in _times(item)]
    if isinstance(value, list):
        return [t for item in value for t in _times(item)]
    return [value] if isinstance(value, str) and value.startswith("2026-") else []


@pytest.mark.parametrize("concept", CASES)
def test_the_json_has_the_documented_fields_in_order_and_utc_times(concept: str) -> None:
    model, build = CASES[concept]
    body = build()
    assert list(body) == list(model.model_fields)
    model.model_validate(body)
    if concept != "change":  # a change holds JSON values, no times of its own
        assert set(_times(body)) == {"2026-12-07T13:30:00.250000Z"}
