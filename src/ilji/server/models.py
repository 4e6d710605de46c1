"""The JSON shapes of the HTTP API, as pydantic models: they validate requests and document responses.

Responses are built as plain dicts by `ilji.domain.shapes` (orjson serialises them without a
pydantic round trip); the response models here exist for the OpenAPI document, and the
end-to-end tests check that the two agree.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from ilji.domain.events import MAX_EVENTS_PER_APPEND, MAX_SAFE_POSITION
from ilji.domain.validation import MAX_STREAM_NAME_LENGTH, MAX_TYPE_LENGTH
from ilji.store.lifecycle import MAX_RETENTION_SECONDS

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


class ReplayRequest(BaseModel):
    """Which parked events to apply once more (none given: all of the projection's)."""

    model_config = ConfigDict(extra="ignore")

    event_ids: list[Annotated[uuid.UUID, BeforeValidator(_canonical_uuid)]] | None = Field(
        default=None, max_length=1000, description="parked events' ids; omit for all"
    )


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


def component_schemas() -> dict[str, Any]:
    """JSON schemas of the models the append route documents by hand (see `routes.append_operation`)."""
    components: dict[str, Any] = {}
    for model in (AppendRequest, AppendResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components
