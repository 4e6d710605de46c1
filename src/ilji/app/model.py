"""An aggregate type: a decider plus what it takes to store it (category, events, snapshots)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ilji.app.codec import decode_dataclass, to_json
from ilji.app.errors import RegistryError
from ilji.app.registry import EventRegistry
from ilji.domain.decider import Decider
from ilji.domain.validation import validate_category

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")


class StateCodec(Protocol[S]):
    """Turns a state into a JSON object and back; `schema_version` names the state's shape.

    Bump `schema_version` whenever the state's shape or the meaning of a field changes (even if
    the JSON still decodes): snapshots of other versions are then ignored and rebuilt.
    """

    @property
    def name(self) -> str:
        """The state's type name, stored with snapshots."""
        ...

    @property
    def schema_version(self) -> int:
        """The version of the state's shape."""
        ...

    def encode(self, state: S) -> Mapping[str, Any]:
        """The state as a JSON object."""
        ...

    def decode(self, data: Mapping[str, Any]) -> S:
        """The state from a JSON object written by `encode` of the same schema version."""
        ...


class DataclassStateCodec(Generic[S]):
    """The `StateCodec` of a dataclass state (by its type hints, like events)."""

    def __init__(self, cls: type[S], schema_version: int = 1, name: str | None = None) -> None:
        if not dataclasses.is_dataclass(cls):
            raise RegistryError(f"{cls.__name__} is not a dataclass; write a StateCodec for it")
        self.cls = cls
        self.schema_version = schema_version
        self.name = name or cls.__name__

    def encode(self, state: S) -> Mapping[str, Any]:
        """The state as a JSON object."""
        data = to_json(state)
        assert isinstance(data, dict)
        return data

    def decode(self, data: Mapping[str, Any]) -> S:
        """The state from a JSON object."""
        state: S = decode_dataclass(self.cls, data)
        return state


@dataclass(frozen=True, slots=True)
class SnapshotPolicy(Generic[S]):
    """Take a snapshot every `every` events of a stream, stored with `codec`."""

    every: int
    codec: StateCodec[S]

    def __post_init__(self) -> None:
        if self.every < 1:
            raise RegistryError("a snapshot policy needs every >= 1")

    def due(self, before: int, after: int) -> bool:
        """Whether moving a stream from version `before` to `after` crosses a multiple of `every`."""
        return after // self.every > before // self.every


@dataclass(frozen=True, slots=True)
class AggregateType(Generic[C, E, S]):
    """Everything the application layer needs to run a decider on the store.

    Streams of this type are named `<category>-<id>`.
    """

    category: str
    decider: Decider[C, E, S]
    events: EventRegistry
    snapshots: SnapshotPolicy[S] | None = None

    def __post_init__(self) -> None:
        validate_category(self.category)

    def stream(self, entity_id: str) -> str:
        """The stream of one entity."""
        return f"{self.category}-{entity_id}"
