"""The JSON the API answers about projections, stream lifecycles and the store's catalog.

Each concept is one dataclass of the layer that owns it (`ilji.projections.admin`,
`ilji.store.lifecycle`, `ilji.store.catalog`, `ilji.app.time_travel`), serialised by
`ilji.domain.shapes.to_json` (times in UTC with a `Z`), less the fields the URL already says
or plus the totals a status shows. The pydantic models here describe those bodies in the
OpenAPI document; tests/unit/test_server_shapes.py holds each model to the JSON built
beside it, field for field and in order.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ilji.app.time_travel import StateHistory
from ilji.domain.shapes import event_json, to_json, utc_text
from ilji.projections.admin import State
from ilji.server.models import EventOut
from ilji.store.catalog import StoreStats, StreamListing


class PartitionOut(BaseModel):
    """One partition of one version of a projection."""

    version: int = Field(description="the projection version this partition belongs to")
    partition: int = Field(description="the partition's number, from 0")
    partitions: int = Field(description="how many partitions this version has")
    state: State = Field(description="running, catching_up, stopped, paused, failed or retired")
    checkpoint: int = Field(description="the global position this partition has dealt with")
    head: int = Field(description="the newest global position of the log")
    events_behind: int = Field(description="events this partition still has to read (counted up to a cap)")
    events_behind_capped: bool = Field(description="true when `events_behind` is the cap: at least that many")
    lag_seconds: float = Field(description="age of the oldest event not dealt with yet (0: caught up)")
    events_per_second: float = Field(description="recent apply rate (0 unless running or catching up)")
    events_applied: int = Field(description="events this partition has applied since it started")
    owner: str | None = Field(description="the worker holding the lease, if any")
    fencing_token: int = Field(description="goes up each time another worker takes the partition over")
    lease_expires_at: str | None = Field(description="RFC 3339, UTC (database clock)")
    parked: int = Field(description="parked events not replayed yet")
    error: str | None = Field(description="why the partition failed (stop policy)")
    updated_at: str = Field(description="RFC 3339, UTC")


class WorkerOut(BaseModel):
    """A worker running a projection (heartbeat in the last minute)."""

    worker: str = Field(description="the worker's id (ILJI_WORKER_ID: in Kubernetes, the pod name)")
    code_version: int | None = Field(description="the `version` of the projection code the worker has")
    versions: list[int] = Field(description="the versions it runs")
    state: str | None = Field(
        description="serving, building, idle (its code is older than the serving version's) or refused"
    )
    error: str | None = Field(description="why it refuses to run a version (a deploy to fix)")
    heartbeat_at: str = Field(description="RFC 3339, UTC")


class ProjectionOut(BaseModel):
    """A projection: its serving version, a rebuild in progress, and totals over its partitions."""

    name: str = Field(description="the projection's name")
    active_version: int = Field(description="the version that serves reads")
    requested_version: int | None = Field(description="the version a requested rebuild builds")
    paused: bool = Field(description="true while an admin has paused it")
    state: State = Field(description="the worst state among the serving partitions")
    category: str | None = Field(description="the category it reads (null: the whole log)")
    types: list[str] | None = Field(description="the event types it reads (null: all)")
    checkpoint: int = Field(description="the lowest checkpoint of the serving partitions")
    events_behind: int = Field(description="the most events a serving partition still has to read")
    lag_seconds: float = Field(description="the largest lag of its serving partitions, in seconds")
    events_per_second: float = Field(description="the serving partitions' recent apply rate, added up")
    parked: int = Field(description="parked events not replayed yet, over all partitions")
    owners: list[str] = Field(description="workers holding a live lease on a serving partition")
    partitions: list[PartitionOut] = Field(description="the serving version's partitions")
    rebuilding: list[PartitionOut] = Field(description="partitions of a version being rebuilt")
    workers: list[WorkerOut] = Field(description="workers running the projection, with their code version")
    errors: list[str] = Field(description="what workers refuse to run, e.g. another partition count")


class ProjectionList(BaseModel):
    """Every projection registered in the database."""

    projections: list[ProjectionOut] = Field(description="the projections, by name")


class RebuildAccepted(BaseModel):
    """A rebuild was requested: workers build `version` from position 0, then cut over."""

    projection: str = Field(description="the projection's name")
    version: int = Field(description="the version the workers build")


class ParkedEventOut(BaseModel):
    """An event a projection gave up on."""

    version: int = Field(description="the projection version that parked it")
    partition: int = Field(description="the partition that parked it")
    position: int = Field(description="the event's global position")
    event_id: uuid.UUID = Field(description="the event's id")
    stream: str = Field(description="the event's stream")
    type: str = Field(description="the event's type")
    error: str = Field(description="the error of the last attempt")
    attempts: int = Field(description="how many times applying it failed")
    parked_at: str = Field(description="RFC 3339, UTC")
    replay_requested_at: str | None = Field(
        description="when a replay was asked for (RFC 3339, UTC; null: never)"
    )
    replayed_at: str | None = Field(description="when it was applied at last (RFC 3339, UTC; null: not yet)")


class ParkedList(BaseModel):
    """Parked events of one projection, oldest first."""

    projection: str = Field(description="the projection's name")
    events: list[ParkedEventOut] = Field(description="its parked events, oldest first")


class ReplayAccepted(BaseModel):
    """Replays were requested; the owning workers act on them within a third of the lease TTL."""

    projection: str = Field(description="the projection's name")
    requested: int = Field(description="how many parked events were marked for replay")
    event_ids: list[uuid.UUID] | None = Field(description="the ids asked for (null: all)")


class WaitReached(BaseModel):
    """The projection's serving version has dealt with every event up to `position`."""

    projection: str = Field(description="the projection's name")
    position: int = Field(description="the global position waited for")
    reached: bool = Field(description="true: the serving version has dealt with it")


class StreamLifecycleOut(BaseModel):
    """A stream's lifecycle: its version (every event, hidden or not) and what readers see."""

    stream: str = Field(description="the stream's name")
    version: int = Field(description="events ever appended, hidden or not; appends continue from it")
    deleted: bool = Field(description="soft-deleted and nothing appended since: reads answer 404")
    deleted_version: int | None = Field(
        description="the version when it was deleted: events up to it stay hidden until a restore"
    )
    deleted_at: datetime | None = Field(
        description="when it was soft-deleted (RFC 3339, UTC; null: not deleted)"
    )
    truncate_before: int = Field(description="versions below it are hidden (0: none)")
    first_visible_version: int = Field(description="the lowest version reads return")


class RetentionOut(BaseModel):
    """A category's retention rule (both null: none)."""

    category: str = Field(description="the category")
    max_age_seconds: int | None = Field(
        description="events recorded longer ago are hidden (null: no age rule)"
    )
    max_count: int | None = Field(
        description="each stream keeps only its newest events (null: no count rule)"
    )


# -- response models (for the OpenAPI document; the handlers build plain dicts) --------------------


class StreamSummaryOut(BaseModel):
    """A stream and its newest event."""

    stream: str = Field(description="the stream's name")
    version: int = Field(description="the stream's version (its number of events)")
    last_position: int = Field(description="the global position of its newest event")
    last_recorded_at: str = Field(description="when its newest event was recorded (RFC 3339, UTC)")


class StreamList(BaseModel):
    """A page of streams in name order: pass `next` as `after` for the next page."""

    streams: list[StreamSummaryOut] = Field(description="the streams, in name order")
    next: str | None = Field(description="the cursor of the next page (null: no more)")


class AppendBucketOut(BaseModel):
    """Events recorded from `start` for `bucket_seconds`."""

    start: str = Field(description="RFC 3339, UTC")
    events: int = Field(description="events recorded in the bucket")


class StatsOut(BaseModel):
    """Counts and recent appends. Past their caps, counts are estimates (`*_exact`: false)."""

    events: int = Field(description="events in the store")
    events_exact: bool = Field(description="false when `events` is an estimate")
    streams: int = Field(description="streams in the store")
    streams_exact: bool = Field(description="false when `streams` is an estimate")
    last_position: int = Field(description="the newest event's global position (0: none)")
    last_recorded_at: str | None = Field(description="when the newest event was recorded")
    follow_from: int = Field(description="a position to follow the log from (SSE `after`) to see new events")
    window_minutes: int = Field(description="the minutes the buckets cover")
    bucket_seconds: int = Field(description="the length of one bucket")
    complete_since: str = Field(
        description="buckets before this time are partial (only recent events are read)"
    )
    events_last_minute: int = Field(description="events recorded in the last minute")
    appends_per_second: float = Field(description="events recorded per second over the last minute")
    buckets: list[AppendBucketOut] = Field(description="events recorded per bucket, oldest first")


class ViewOut(BaseModel):
    """A registered domain view: the streams of `category` can be shown version by version."""

    category: str = Field(description="the category whose streams it shows")
    title: str = Field(description="a title for people")
    state_type: str = Field(description="the name of the state's type")
    event_types: list[str] = Field(description="the event types it folds")


class ViewList(BaseModel):
    """Every registered domain view."""

    views: list[ViewOut] = Field(description="the views, by category")


class ChangeOut(BaseModel):
    """What one event changed in the state, at `path` (object keys and array indexes)."""

    path: list[str | int] = Field(description="where in the state: object keys and array indexes")
    kind: Literal["added", "removed", "changed"] = Field(description="added, removed or changed")
    before: Any = Field(default=None, description="the value before (removed, changed)")
    after: Any = Field(default=None, description="the value after (added, changed)")


class StateOut(BaseModel):
    """One version: its event, the state right after it, and what the event changed."""

    event: EventOut = Field(description="the event of this version")
    state: dict[str, Any] = Field(description="the state right after the event")
    changes: list[ChangeOut] = Field(description="what the event changed")
    error: str | None = Field(description="why the event could not be applied (the state did not change)")


class StateHistoryOut(BaseModel):
    """A page of a stream's versions folded by its domain view."""

    stream: str = Field(description="the stream's name")
    category: str = Field(description="its category (the view's)")
    title: str = Field(description="the view's title")
    state_type: str = Field(description="the name of the state's type")
    version: int = Field(description="the stream's current version")
    from_version: int = Field(description="the first version of this page")
    before: dict[str, Any] = Field(description="the state before `from_version` (the initial state for 1)")
    states: list[StateOut] = Field(description="one entry per version")
    next: int | None = Field(description="`from_version` of the next page (null: no more)")


class WhoAmI(BaseModel):
    """Whether the server checks tokens, and what the presented one may do."""

    auth: bool = Field(description="true when the server has tokens configured")
    role: Literal["read", "write", "admin"] = Field(description="admin when auth is off")


# -- JSON conversions ----------------------------------------------------------------------------


def listing_json(listing: StreamListing) -> dict[str, Any]:
    """A stream listing as the JSON object of `GET /v1/streams`: the dataclass as it is."""
    shown: dict[str, Any] = to_json(listing)
    return shown


def stats_json(stats: StoreStats, window_minutes: int) -> dict[str, Any]:
    """Store statistics as the JSON object of `GET /v1/stats`."""
    return {
        "events": stats.events,
        "events_exact": stats.events_exact,
        "streams": stats.streams,
        "streams_exact": stats.streams_exact,
        "last_position": stats.last_position,
        "last_recorded_at": to_json(stats.last_recorded_at),
        "follow_from": stats.follow_from,
        "window_minutes": window_minutes,
        "bucket_seconds": stats.bucket_seconds,
        "complete_since": utc_text(stats.complete_since),
        "events_last_minute": stats.events_last_minute,
        "appends_per_second": round(stats.events_last_minute / 60, 3),
        "buckets": to_json(stats.buckets),
    }


def history_json(history: StateHistory, from_version: int, limit: int) -> dict[str, Any]:
    """A page of folded states as the JSON object of `GET /v1/states/{stream}`."""
    view = history.view
    last = history.steps[-1].event.version if history.steps else from_version - 1
    return {
        "stream": history.stream,
        "category": view.category,
        "title": view.title or view.state_type,
        "state_type": view.state_type,
        "version": history.version,
        "from_version": from_version,
        "before": history.before,
        "states": [
            {
                "event": event_json(step.event),
                "state": step.state,
                "changes": to_json(step.changes),
                "error": step.error,
            }
            for step in history.steps
        ],
        "next": last + 1 if len(history.steps) == limit and last < history.version else None,
    }
