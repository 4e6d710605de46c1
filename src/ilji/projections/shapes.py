"""The one JSON form of a projection's status and of a parked event.

The HTTP API (`GET /v1/projections...`) answers with these objects and `ilji projections
status --json`, `ilji projections parked --json` and `ilji relay status --json` print the same
ones: the dataclasses of `ilji.projections.admin` through `ilji.domain.shapes.to_json` (times
in UTC with a `Z`), less the fields the request already names, plus a status's totals.
"""

from __future__ import annotations

from typing import Any

from ilji.domain.shapes import to_json
from ilji.projections.admin import ParkedEvent, PartitionStatus, ProjectionStatus


def _without(value: Any, *names: str) -> dict[str, Any]:
    # The dataclass's own JSON (`to_json`), less the fields the URL already says.
    shown: dict[str, Any] = to_json(value)
    for name in names:
        del shown[name]
    return shown


def partition_json(p: PartitionStatus) -> dict[str, Any]:
    """A partition's status as the JSON object of the HTTP API (`PartitionOut`)."""
    return _without(p, "projection", "active")


def projection_json(st: ProjectionStatus) -> dict[str, Any]:
    """A projection's status as JSON: its fields and the totals over its serving partitions
    (the HTTP API's `ProjectionOut`, and what `ilji projections status --json` prints)."""
    return {
        "name": st.name,
        "active_version": st.active_version,
        "requested_version": st.requested_version,
        "paused": st.paused,
        "state": st.state,
        "category": st.category,
        "types": st.types,
        "checkpoint": st.checkpoint,
        "events_behind": st.events_behind,
        "lag_seconds": st.lag_seconds,
        "events_per_second": st.events_per_second,
        "parked": st.parked,
        "owners": st.owners,
        "partitions": [partition_json(p) for p in st.partitions],
        "rebuilding": [partition_json(p) for p in st.rebuilding],
        "workers": to_json(st.workers),
        "errors": st.errors,
    }


def parked_json(p: ParkedEvent) -> dict[str, Any]:
    """A parked event as the JSON object of the HTTP API (`ParkedEventOut`)."""
    return _without(p, "projection")
