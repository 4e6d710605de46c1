"""Typed events: dataclasses registered by name and schema version, upcast on read.

Writing: `registry.encode(event, metadata)` makes a `NewEvent` whose `type` is the registered
name, whose `data` is the dataclass as JSON, and whose metadata carries `schema_version`.

Reading: `registry.decode(recorded)` runs the upcasters registered for the stored
(type, schema version), one version step at a time, until the data matches the current class,
then builds the dataclass. Stored rows never change: upcasting happens on every read.

The tolerant-reader policy, in full:

- Extra fields in stored data are ignored (a field was removed, or a newer producer added one).
- Missing fields take the dataclass default; a missing field without a default is an
  `EventSchemaError` (write an upcaster that supplies it).
- An event type that is not registered becomes an `UnknownEvent` (type, data and schema version
  kept), which command handling and temporal queries skip: the stream's version still counts
  it, the state does not change. With `unknown="error"` the registry raises `UnknownEventType`
  instead, for models that must understand every event of their streams.
- A schema version newer than the registered class (written by newer code) raises
  `EventFromNewerSchema`: guessing could lose data.
- Stored events without `schema_version` in their metadata are schema version 1.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from ilji.app.codec import decode_dataclass, to_json
from ilji.app.errors import EventFromNewerSchema, EventSchemaError, RegistryError, UnknownEventType
from ilji.domain.events import NewEvent, RecordedEvent

#: The metadata key that holds an event's schema version.
SCHEMA_VERSION_KEY = "schema_version"

T = TypeVar("T", bound=type)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the data of schema version n into the data of version n + 1 (a pure function)."""


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A stored event whose type this code does not know (see the tolerant-reader policy)."""

    type: str
    data: Mapping[str, Any]
    schema_version: int


@dataclass(frozen=True, slots=True)
class EventSpec:
    """How one event class is stored: its name and its current schema version."""

    cls: type
    name: str
    schema_version: int


@dataclass(frozen=True, slots=True)
class _Step:
    upcast: Upcaster
    rename_to: str | None


class EventRegistry:
    """Event classes by stored name and schema version, and the upcasters between versions."""

    def __init__(self, *, unknown: Literal["skip", "error"] = "skip") -> None:
        self.unknown = unknown
        self._by_name: dict[str, EventSpec] = {}
        self._by_class: dict[type, EventSpec] = {}
        self._steps: dict[tuple[str, int], _Step] = {}

    # -- registering ---------------------------------------------------------------------------

    @overload
    def register(self, cls: T) -> T: ...

    @overload
    def register(self, *, name: str | None = None, version: int = 1) -> Callable[[T], T]: ...

    def register(
        self, cls: T | None = None, *, name: str | None = None, version: int = 1
    ) -> T | Callable[[T], T]:
        """Register a dataclass as an event (usable as `@registry.register` or with arguments).

        `name` is the stored type (the class name by default: choose it once, it is forever);
        `version` is the schema version new events are written with.
        """

        def add(event_cls: T) -> T:
            if not dataclasses.is_dataclass(event_cls):
                raise RegistryError(f"{event_cls.__name__} must be a dataclass to be an event")
            if version < 1:
                raise RegistryError(f"{event_cls.__name__}: schema versions start at 1")
            spec = EventSpec(event_cls, name or event_cls.__name__, version)
            if spec.name in self._by_name and self._by_name[spec.name].cls is not event_cls:
                raise RegistryError(f"event type {spec.name!r} is registered twice")
            self._by_name[spec.name] = spec
            self._by_class[event_cls] = spec
            return event_cls

        return add(cls) if cls is not None else add

    def upcaster(
        self, event_type: str, from_version: int, *, rename_to: str | None = None
    ) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns `event_type`'s data from `from_version` to the next.

        With `rename_to`, the event continues its chain under a new type name (a renamed event);
        upcasters of that name then take it from `from_version + 1`.
        """

        def add(fn: Upcaster) -> Upcaster:
            key = (event_type, from_version)
            if key in self._steps:
                raise RegistryError(f"two upcasters for {event_type!r} version {from_version}")
            self._steps[key] = _Step(fn, rename_to)
            return fn

        return add

    def include(self, other: EventRegistry) -> EventRegistry:
        """Add another registry's classes and upcasters to this one (returns self)."""
        for spec in other._by_name.values():
            self.register(name=spec.name, version=spec.schema_version)(spec.cls)
        for key, step in other._steps.items():
            if key in self._steps and self._steps[key] is not step:
                raise RegistryError(f"two upcasters for {key[0]!r} version {key[1]}")
            self._steps[key] = step
        return self

    # -- looking up ----------------------------------------------------------------------------

    def spec_of(self, event: object) -> EventSpec:
        """The registration of `event`'s class."""
        try:
            return self._by_class[type(event)]
        except KeyError:
            raise RegistryError(f"{type(event).__name__} is not a registered event class") from None

    def name_of(self, event_cls: type) -> str:
        """The stored type name of an event class."""
        try:
            return self._by_class[event_cls].name
        except KeyError:
            raise RegistryError(f"{event_cls.__name__} is not a registered event class") from None

    def names(self, classes: Iterable[type] | None = None) -> list[str]:
        """The stored names of `classes` (all registered classes by default), for type filters."""
        if classes is None:
            return sorted(self._by_name)
        return [self.name_of(c) for c in classes]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    # -- converting ----------------------------------------------------------------------------

    def encode(self, event: object, metadata: Mapping[str, Any] | None = None) -> NewEvent:
        """The `NewEvent` that stores `event`, with `metadata` plus its schema version."""
        spec = self.spec_of(event)
        data = to_json(event)
        meta = dict(metadata or {})
        meta[SCHEMA_VERSION_KEY] = spec.schema_version
        return NewEvent(spec.name, data, meta)

    def decode(self, recorded: RecordedEvent) -> object:
        """The typed event stored in `recorded`: upcast, then decoded (or an `UnknownEvent`)."""
        version = recorded.metadata.get(SCHEMA_VERSION_KEY, 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise EventSchemaError(f"event {recorded.id}: bad schema version {version!r}")
        return self.decode_data(recorded.type, version, recorded.data, where=str(recorded.id))

    def decode_data(self, event_type: str, version: int, data: Mapping[str, Any], where: str = "") -> object:
        """Like `decode`, from the parts of a stored event."""
        event_type, version, upcast = self.upcast(event_type, version, data)
        spec = self._by_name.get(event_type)
        if spec is None:
            if self.unknown == "error":
                raise UnknownEventType(event_type)
            return UnknownEvent(event_type, upcast, version)
        if version > spec.schema_version:
            raise EventFromNewerSchema(event_type, version, spec.schema_version)
        if version < spec.schema_version:
            raise EventSchemaError(
                f"{event_type!r} is stored at schema version {version} and the class is at "
                f"{spec.schema_version}, but no upcaster takes it from version {version}"
            )
        return decode_dataclass(spec.cls, upcast, f"{event_type}{'@' + where if where else ''}")

    def upcast(
        self, event_type: str, version: int, data: Mapping[str, Any]
    ) -> tuple[str, int, dict[str, Any]]:
        """Apply the chain of upcasters from (type, version): the final (type, version, data)."""
        current = dict(data)
        seen = 0
        while (step := self._steps.get((event_type, version))) is not None:
            if seen == 0:
                # Upcasters get a deep copy, so a careless one cannot change the stored event's
                # cached data (which the next reader would then see already upcast).
                current = copy.deepcopy(current)
            current = step.upcast(current)
            event_type = step.rename_to or event_type
            version += 1
            seen += 1
            if seen > 1000:  # pragma: no cover - only a registration loop can get here
                raise RegistryError(f"upcaster chain of {event_type!r} does not end")
        return event_type, version, current
