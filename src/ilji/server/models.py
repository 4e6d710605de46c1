"""The JSON shapes of the HTTP API, as pydantic models: they validate requests and document responses.

Responses are built as plain dicts by `event_json` and friends (orjson serialises them without
a pydantic round trip); the response models here exist for the OpenAPI document, and the
end-to-end tests check that the two agree.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from ilji.domain.events import MAX_EVENTS_PER_APPEND, MAX_SAFE_POSITION, RecordedEvent
from ilji.domain.shapes import to_json, utc_text
from ilji.domain.validation import MAX_STREAM_NAME_LENGTH, MAX_TYPE_LENGTH
from ilji.projections.admin import ParkedEvent, PartitionStatus, ProjectionStatus, State
from ilji.store.lifecycle import MAX_RETENTION_SECONDS, StreamLifecycle

StateName = Literal["any", "no_stream", "exists"]

# The characters `ilji.domain.validation` refuses in names and types (whitespace and control
# characters), spelled out so that the OpenAPI pattern means the same to every regex engine
# (pydantic's Rust engine, Python's, a client's ECMAScript one).
_FORBIDDEN = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NAME_PATTERN = f"^[^{_FORBIDDEN}]+$"
"""A stream name or event type as the store accepts it (reading may name `$` streams)."""
WRITABLE_STREAM_PATTERN = f"^[^${_FORBIDDEN}][^{_FORBIDDEN}]*$"
"""A stream name an append may use: `$` names are reserved for Ilji."""
CATEGORY_PATTERN = f"^[^{_FORBIDDEN}-]+$"
"""A category name: a stream name without `-`."""
PREFIX_PATTERN = f"^[^{_FORBIDDEN}]*$"
"""The start of a stream name (empty: any name), as the stream listing takes it."""


def _integral_float(value: Any) -> Any:
    # JSON has one number type: 3.0 is an integer to JSON Schema (and to JavaScript clients).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _canonical_uuid(value: Any) -> Any:
    if isinstance(value, str) and not _UUID.match(value):
        raise ValueError("must be a UUID like 0190f3a2-7c1e-7d3b-9a4e-5f6a7b8c9d0e")
    return value


class EventIn(BaseModel):
    """One event to append."""

    model_config = ConfigDict(extra="ignore")

    type: Annotated[
        str,
        Field(min_length=1, max_length=MAX_TYPE_LENGTH, pattern=NAME_PATTERN, description="like OrderPlaced"),
    ]
    data: dict[str, Any] = Field(default_factory=dict, description="the event's data: a JSON object")
    metadata: dict[str, Any] = Field(default_factory=dict, description="a JSON object")
    # The canonical 8-4-4-4-12 form only: pydantic would also take 32 bare hex digits or a
    # "urn:uuid:" prefix, which the document's `format: uuid` does not allow.
    id: Annotated[uuid.UUID, BeforeValidator(_canonical_uuid)] | None = Field(
        default=None, description="the event's id; reuse it to make a retry idempotent"
    )


class AppendRequest(BaseModel):
    """A batch of events for one stream, appended atomically."""

    model_config = ConfigDict(extra="ignore")

    expected_version: (
        Annotated[StrictInt, Field(ge=0, le=MAX_SAFE_POSITION), BeforeValidator(_integral_float)] | StateName
    ) = Field(
        default="any",
        description="the stream's version this append expects (0: no events), or a stream state",
    )
    events: list[EventIn] = Field(
        min_length=1, max_length=MAX_EVENTS_PER_APPEND, description="the events, stored in this order"
    )


class AppendResponse(BaseModel):
    """Where the batch landed."""

    stream: str = Field(description="the stream appended to")
    first_version: int = Field(description="the version of the batch's first event")
    last_version: int = Field(description="the version of the batch's last event: the stream's version now")
    first_position: int = Field(description="the global position of the batch's first event")
    last_position: int = Field(description="the global position of the batch's last event")


class AppendPartIn(BaseModel):
    """One stream's part of a multi-stream append."""

    model_config = ConfigDict(extra="ignore")

    stream: str = Field(
        min_length=1,
        max_length=MAX_STREAM_NAME_LENGTH,
        pattern=WRITABLE_STREAM_PATTERN,
        description="the stream, like account-7 (names starting with $ are reserved)",
    )
    expected_version: (
        Annotated[StrictInt, Field(ge=0, le=MAX_SAFE_POSITION), BeforeValidator(_integral_float)] | StateName
    ) = Field(default="any", description="the version this stream must be at (0: no events), or a state")
    events: list[EventIn] = Field(
        min_length=1, max_length=MAX_EVENTS_PER_APPEND, description="this stream's events, in this order"
    )


class MultiAppendRequest(BaseModel):
    """Several streams' events, appended in one transaction: all of them or none."""

    model_config = ConfigDict(extra="ignore")

    parts: list[AppendPartIn] = Field(
        min_length=1,
        max_length=MAX_EVENTS_PER_APPEND // 2,
        description="one part per stream (a stream at most once); their events are consecutive "
        "in the global log in this order",
    )


class MultiAppendResponse(BaseModel):
    """Where each part landed, in part order."""

    parts: list[AppendResponse] = Field(description="one result per part, in the request's order")


class EventOut(BaseModel):
    """A stored event."""

    id: uuid.UUID = Field(description="the event's id (a UUID, unique in the store)")
    stream: str = Field(description="the stream it belongs to")
    version: int = Field(description="its place in its stream, from 1")
    position: int = Field(description="its place in the global log")
    type: str = Field(description="the event's type, like OrderPlaced")
    data: dict[str, Any] = Field(description="the event's data: a JSON object")
    metadata: dict[str, Any] = Field(description="the event's metadata: a JSON object")
    recorded_at: str = Field(description="RFC 3339, UTC")


class StreamPage(BaseModel):
    """Events of one stream."""

    stream: str = Field(description="the stream read")
    version: int = Field(description="the stream's current version (its number of events)")
    events: list[EventOut] = Field(description="the events, in the order asked for")


class LogPage(BaseModel):
    """A page of the global log or of a category: pass `next` as `after` for the next page."""

    events: list[EventOut] = Field(description="the events in global order")
    next: int = Field(description="pass as `after` for the next page (equals `after` when caught up)")


class Health(BaseModel):
    """A probe's answer."""

    status: str = Field(description="ok (alive) or ready (can serve requests)")


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


class ReplayRequest(BaseModel):
    """Which parked events to apply once more (none given: all of the projection's)."""

    model_config = ConfigDict(extra="ignore")

    event_ids: list[Annotated[uuid.UUID, BeforeValidator(_canonical_uuid)]] | None = Field(
        default=None, max_length=1000, description="parked events' ids; omit for all"
    )


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


_Count = Annotated[StrictInt, Field(ge=1, le=MAX_SAFE_POSITION), BeforeValidator(_integral_float)]


class TruncateRequest(BaseModel):
    """Hide a stream's versions below `before` (1 shows every version again)."""

    model_config = ConfigDict(extra="ignore")

    before: _Count = Field(description="the first version readers see; at most the stream's version + 1")


class RetentionIn(BaseModel):
    """A category's retention: give one rule or both."""

    model_config = ConfigDict(extra="ignore")

    max_age_seconds: (
        Annotated[StrictInt, Field(ge=1, le=MAX_RETENTION_SECONDS), BeforeValidator(_integral_float)] | None
    ) = Field(default=None, description="hide events recorded longer ago than this")
    max_count: _Count | None = Field(default=None, description="keep only each stream's newest events")


class RetentionOut(BaseModel):
    """A category's retention rule (both null: none)."""

    category: str = Field(description="the category")
    max_age_seconds: int | None = Field(
        description="events recorded longer ago are hidden (null: no age rule)"
    )
    max_count: int | None = Field(
        description="each stream keeps only its newest events (null: no count rule)"
    )


def lifecycle_json(state: StreamLifecycle) -> dict[str, Any]:
    """A stream's lifecycle as JSON (`StreamLifecycleOut`)."""
    return {**state.as_json(), "deleted_at": to_json(state.deleted_at)}


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
    """A projection's status as the JSON object of the HTTP API (`ProjectionOut`): its fields
    and the totals over its serving partitions (`ilji projections status --json` prints it)."""
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


def event_json(event: RecordedEvent) -> dict[str, Any]:
    """An event as the JSON object of the HTTP API (the same shape `ilji read --json` prints)."""
    return {
        "id": str(event.id),
        "stream": event.stream,
        "version": event.version,
        "position": event.position,
        "type": event.type,
        "data": event.data,
        "metadata": event.metadata,
        "recorded_at": utc_text(event.recorded_at),
    }


def component_schemas() -> dict[str, Any]:
    """JSON schemas of the models the append route documents by hand (see `routes.append_operation`)."""
    components: dict[str, Any] = {}
    for model in (AppendRequest, AppendResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components
