"""Deciders: the pure heart of an event-sourced model (standard library only).

A decider is three functions and nothing else:

- `initial_state()`: the state of a stream that has no events yet;
- `evolve(state, event) -> state`: what one event does to the state (never fails, never refuses:
  the event already happened);
- `decide(command, state) -> events`: what a command means given the state; it returns the
  events to record, an empty list when there is nothing to do (an idempotent repeat), or raises
  `CommandRejected` when a business rule says no.

None of them does I/O, so a decider is tested with plain values (see `ilji.testing`) and
the same decider runs against PostgreSQL, the in-memory store, or no store at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ilji.domain.errors import IljiError

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")


class CommandRejected(IljiError):
    """A business rule refused a command; nothing was recorded.

    Deciders raise subclasses of it (for example `SeatsUnavailable`); the command handler
    never retries them, because reloading the stream does not change the rule's answer
    unless the stream changed, and the handler already decided on the latest state.
    """

    code = "command-rejected"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)


@dataclass(frozen=True, slots=True)
class Decider(Generic[C, E, S]):
    """The three pure functions of an event-sourced model, kept together.

    `evolve_in_place` is an optional optimisation for mutable states (the aggregate-class
    style): the same as `evolve`, but allowed to change the state it is given. Loading uses it
    on a state nobody else holds, instead of copying the state once per event.
    """

    decide: Callable[[C, S], Sequence[E]]
    evolve: Callable[[S, E], S]
    initial_state: Callable[[], S]
    evolve_in_place: Callable[[S, E], S] | None = None

    def fold(self, events: Iterable[E], state: S | None = None) -> S:
        """The state after `events`, starting from `state` (the initial state by default)."""
        current = self.initial_state() if state is None else state
        for event in events:
            current = self.evolve(current, event)
        return current

    def run(self, command: C, history: Iterable[E]) -> list[E]:
        """Decide `command` against the state `history` leads to (what a test or a REPL wants)."""
        return list(self.decide(command, self.fold(history)))
