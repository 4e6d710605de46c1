"""Time travel: a stream of a known aggregate type, shown as the state after each of its events.

Event sourcing keeps every fact, so the state at any version is a fold away: the console's
time travel lists, for a page of a stream's versions, the event, the state right after it and
what that event changed. A `DomainView` is what it takes to do that for one aggregate type:
the `AggregateType` (category, event registry with its upcasters, decider) and a way to show
the state as JSON. `DomainViews` holds the registered views by category; `ilji serve
--example NAME` registers the example domains' views, and an application registers its own
with `create_app(settings, views=...)`.

Folding is tolerant, like the repository's: an event of an unknown type counts for the
version and leaves the state as it was. Unlike the repository, an event that cannot be decoded
(a field missing, a bad value) does not stop the fold: its step carries the error and the state
is left unchanged, so one bad event in a long stream does not hide the rest of its history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from ilji.app.codec import to_json
from ilji.app.errors import EventSchemaError, RegistryError
from ilji.app.model import AggregateType
from ilji.app.registry import UnknownEvent
from ilji.domain.errors import ValidationError
from ilji.domain.events import RecordedEvent
from ilji.domain.validation import validate_stream_name
from ilji.store.port import EventStore

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")

#: The most versions one page of states holds.
MAX_STATES_LIMIT = 200
#: Events read per round trip while folding up to a page.
_FOLD_PAGE = 1000

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class StateChange:
    """One difference between two JSON values: where (`path`), what kind, and both sides."""

    path: tuple[str | int, ...]
    kind: ChangeKind
    before: Any = None
    after: Any = None


def diff(before: Any, after: Any, path: tuple[str | int, ...] = ()) -> list[StateChange]:
    """The changes from JSON value `before` to `after`, as deep as objects and arrays go.

    Object members and array items are compared one by one (an array that grows shows its new
    items as added); anything else that differs is changed as a whole.
    """
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        changes: list[StateChange] = []
        for key in before:
            if key not in after:
                changes.append(StateChange((*path, key), "removed", before=before[key]))
            else:
                changes += diff(before[key], after[key], (*path, key))
        for key in after:
            if key not in before:
                changes.append(StateChange((*path, key), "added", after=after[key]))
        return changes
    if isinstance(before, list) and isinstance(after, list):
        changes = []
        for i, (old, new) in enumerate(zip(before, after, strict=False)):
            changes += diff(old, new, (*path, i))
        for i in range(len(after), len(before)):
            changes.append(StateChange((*path, i), "removed", before=before[i]))
        for i in range(len(before), len(after)):
            changes.append(StateChange((*path, i), "added", after=after[i]))
        return changes
    if type(before) is type(after) and before == after:
        return []
    return [StateChange(path, "changed", before=before, after=after)]


@dataclass(frozen=True, slots=True)
class DomainView(Generic[C, E, S]):
    """How to show the streams of one aggregate type: its `AggregateType` and its state as JSON.

    `describe` turns a state into a JSON object; without it the snapshot codec's encoding is
    used, or the state's fields. Give one to add derived values a reader wants to see (seats
    still available, a balance) or to leave out what should not be shown.
    """

    aggregate: AggregateType[C, E, S]
    describe: Callable[[S], Mapping[str, Any]] | None = None
    title: str | None = None

    @property
    def category(self) -> str:
        """The category of the streams this view shows."""
        return self.aggregate.category

    @property
    def state_type(self) -> str:
        """The name of the state's type (shown as the state's title)."""
        policy = self.aggregate.snapshots
        if policy is not None:
            return policy.codec.name
        return type(self.aggregate.decider.initial_state()).__name__

    def event_types(self) -> list[str]:
        """The stored names of the registered event types."""
        return self.aggregate.events.names()

    def state_json(self, state: S) -> dict[str, Any]:
        """The state as a JSON object."""
        if self.describe is not None:
            shown: Any = to_json(dict(self.describe(state)))
        elif self.aggregate.snapshots is not None:
            shown = to_json(dict(self.aggregate.snapshots.codec.encode(state)))
        else:
            shown = to_json(state)
        if not isinstance(shown, dict):
            raise RegistryError(f"the state of {self.category!r} must show as a JSON object")
        return shown

    def shows(self, stream: str) -> bool:
        """Whether `stream` is an entity stream of this view's aggregate type (`category-id`)."""
        return stream.startswith(self.category + "-") and len(stream) > len(self.category) + 1


@dataclass(frozen=True, slots=True)
class StateStep:
    """One version of a stream: its event, the state right after it, and what the event changed."""

    event: RecordedEvent
    state: dict[str, Any]
    changes: list[StateChange]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StateHistory:
    """A page of a stream's versions, folded: `before` is the state ahead of the first step."""

    stream: str
    view: DomainView[Any, Any, Any]
    version: int
    before: dict[str, Any]
    steps: list[StateStep] = field(default_factory=list)


class DomainViews:
    """The registered domain views, one per category."""

    def __init__(self, views: list[DomainView[Any, Any, Any]] | None = None) -> None:
        self._by_category: dict[str, DomainView[Any, Any, Any]] = {}
        for view in views or []:
            self.register(view)

    def register(self, view: DomainView[Any, Any, Any]) -> None:
        """Add a view; registering the same view again is harmless, another for its category is not."""
        known = self._by_category.get(view.category)
        if known is not None and known is not view:
            raise RegistryError(f"two domain views for the category {view.category!r}")
        self._by_category[view.category] = view

    def for_stream(self, stream: str) -> DomainView[Any, Any, Any] | None:
        """The view that shows `stream`, if one is registered for its category."""
        view = self._by_category.get(stream.split("-", 1)[0])
        return view if view is not None and view.shows(stream) else None

    def __iter__(self) -> Iterator[DomainView[Any, Any, Any]]:
        return iter(sorted(self._by_category.values(), key=lambda v: v.category))

    def __len__(self) -> int:
        return len(self._by_category)


def _step(view: DomainView[Any, Any, S], state: S, recorded: RecordedEvent) -> tuple[S, str | None]:
    """The state after `recorded`, and the reason it could not be applied (None when it was).

    The state is private to `state_history`, and shown as JSON (a deep copy) after each step,
    so a decider that can change a state in place may do so.
    """
    decider = view.aggregate.decider
    step = decider.evolve_in_place or decider.evolve
    try:
        event = view.aggregate.events.decode(recorded)
        if isinstance(event, UnknownEvent):
            return state, None
        return step(state, event), None
    except EventSchemaError as exc:
        return state, exc.message
    except Exception as exc:
        # An upcaster or evolve that chokes on a hand-written event (a KeyError, a bad number):
        # this is a tool for looking at such streams, so the step says what went wrong.
        return state, f"{type(exc).__name__}: {exc}"


async def state_history(
    store: EventStore,
    view: DomainView[Any, Any, S],
    stream: str,
    *,
    from_version: int = 1,
    limit: int = 50,
) -> StateHistory:
    """The states of `stream` after versions `from_version` .. `from_version + limit - 1`.

    The stream is folded from its first event: snapshots are not used, because a snapshot is
    only as good as the code that wrote it, and this is the tool that shows what the events
    themselves say.
    """
    validate_stream_name(stream, allow_system=True)
    if not view.shows(stream):
        raise ValidationError("stream", f"is not a stream of the {view.category!r} domain view")
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
        raise ValidationError("from_version", "must be an integer >= 1")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_STATES_LIMIT:
        raise ValidationError("limit", f"must be an integer from 1 to {MAX_STATES_LIMIT}")
    state: S = view.aggregate.decider.initial_state()
    # Fold what lies before `from_version`. Versions can be missing (a truncated stream hides
    # its first ones), so a page may reach past `from_version`: what it holds from there on is
    # the start of the page shown, not part of the state before it.
    version = 0
    shown_first: list[RecordedEvent] = []
    while version < from_version - 1:
        page = await store.read_stream(stream, version + 1, min(_FOLD_PAGE, from_version - 1 - version))
        if not page:
            break
        for recorded in page:
            if recorded.version >= from_version:
                shown_first.append(recorded)
            else:
                state, _ = _step(view, state, recorded)
        version = page[-1].version
    before = view.state_json(state)
    shown = before
    steps: list[StateStep] = []
    rest = limit - len(shown_first)
    after_fold = await store.read_stream(stream, version + 1, rest) if rest > 0 else []
    for recorded in [*shown_first, *after_fold][:limit]:
        state, error = _step(view, state, recorded)
        after = view.state_json(state)
        steps.append(StateStep(recorded, after, diff(shown, after), error))
        shown = after
    current = await store.stream_version(stream)
    return StateHistory(stream, view, current, before, steps)
