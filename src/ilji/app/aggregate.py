"""The aggregate-class style, for people who prefer objects: built on the same decider machinery.

An aggregate is a class whose command methods check the rules and call `self.record(event)`,
and whose `apply(event)` changes its fields. `aggregate_decider(MyAggregate)` turns it into a
`Decider` whose commands are callables taking the aggregate (for example
`lambda ship: ship.arrive("Busan", when)`), so it runs on the same `Repository`, snapshots,
temporal queries and test helpers as a functional decider.

`decide` and `evolve` work on deep copies: the aggregate style mutates `self`, but the
machinery's contract (pure functions over values) still holds from the outside. Loading a
stream folds into a fresh object with `evolve_in_place`, so it copies nothing per event.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ilji.domain.decider import Decider

E = TypeVar("E")
A = TypeVar("A", bound="AggregateRoot[Any]")

AggregateCommand = Callable[[A], object]
"""A command in the aggregate style: call one of the aggregate's methods."""


class AggregateRoot(Generic[E]):
    """Base class of aggregates: `record` new events from command methods, `apply` them to fields.

    Subclasses need a constructor callable without arguments (the initial state), usually a
    dataclass with defaults, which also gives them a snapshot codec for free.
    """

    def apply(self, event: E) -> None:
        """Change the fields for one event (must not fail: the event already happened)."""
        raise NotImplementedError(f"{type(self).__name__}.apply")

    def record(self, event: E) -> None:
        """Apply a new event and remember it as one to store."""
        self.apply(event)
        self.pending_events.append(event)

    @property
    def pending_events(self) -> list[E]:
        """The events recorded since this object was loaded."""
        pending: list[E] | None = self.__dict__.get("_ilji_pending")
        if pending is None:
            pending = []
            # Kept in __dict__ rather than as a dataclass field: it is not part of the state.
            self.__dict__["_ilji_pending"] = pending
        return pending


def aggregate_decider(cls: type[A]) -> Decider[AggregateCommand[A], Any, A]:
    """The decider of an aggregate class: commands are callables that call its methods."""

    def decide(command: AggregateCommand[A], state: A) -> list[Any]:
        working = copy.deepcopy(state)
        working.__dict__["_ilji_pending"] = []
        command(working)
        return list(working.pending_events)

    def evolve(state: A, event: Any) -> A:
        after = copy.deepcopy(state)
        after.apply(event)
        return after

    def evolve_in_place(state: A, event: Any) -> A:
        state.apply(event)
        return state

    return Decider(decide=decide, evolve=evolve, initial_state=cls, evolve_in_place=evolve_in_place)
