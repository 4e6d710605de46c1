"""Test helpers shipped with Ilji: given / when / then for deciders, and the in-memory twins.

    spec = DeciderSpecification(conference_decider)
    spec.given([ConferenceCreated("PyCon", 10)]).when(ReserveSeats("r1", 2)).then([SeatsReserved("r1", 2)])
    spec.given([]).when(ReserveSeats("r1", 2)).then_raises(ConferenceNotFound)

`given(decider, events)` is the same in one call. The specification runs the decider in memory
(no store, no I/O). For whole application flows the in-memory twins of the PostgreSQL stores
are here too: `MemoryEventStore`, `MemorySnapshotStore`, `MemoryKeyStore` and
`MemoryCheckpointStore`; `StepClock` gives commands a predictable time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from ilji.app.processing import MemoryCheckpointStore
from ilji.domain.decider import Decider
from ilji.store.memory import MemoryEventStore
from ilji.store.snapshots import MemorySnapshotStore
from ilji.store.subject_keys import MemoryKeyStore

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")


class DeciderSpecification(Generic[C, E, S]):
    """The entry point: `DeciderSpecification(decider).given(events)`."""

    def __init__(self, decider: Decider[C, E, S]) -> None:
        self.decider = decider

    def given(self, events: Iterable[E] = ()) -> Given[C, E, S]:
        """The history before the command."""
        return Given(self.decider, list(events))


def given(decider: Decider[C, E, S], events: Iterable[E] = ()) -> Given[C, E, S]:
    """Shorthand for `DeciderSpecification(decider).given(events)`."""
    return Given(decider, list(events))


@dataclass(frozen=True, slots=True)
class Given(Generic[C, E, S]):
    """A decider and its history; `when(command)` completes the arrangement."""

    decider: Decider[C, E, S]
    history: list[E]

    def when(self, command: C) -> When[C, E, S]:
        """The command under test."""
        return When(self.decider, self.history, command)

    def then_state(self, expected: S | Callable[[S], object]) -> S:
        """Assert the state the history leads to (equal to `expected`, or a predicate holds)."""
        state = self.decider.fold(self.history)
        _check_state(state, expected)
        return state


@dataclass(frozen=True, slots=True)
class When(Generic[C, E, S]):
    """History and command; one of the `then...` methods runs the decider and asserts."""

    decider: Decider[C, E, S]
    history: list[E]
    command: C

    def _run(self) -> list[E]:
        return list(self.decider.decide(self.command, self.decider.fold(self.history)))

    def then(self, expected: Sequence[E]) -> list[E]:
        """Assert the command produces exactly `expected` (in order); returns the events."""
        produced = self._run()
        if produced != list(expected):
            raise AssertionError(
                "the command produced other events than expected\n"
                f"  command:  {self.command!r}\n  expected: {list(expected)!r}\n  produced: {produced!r}"
            )
        return produced

    def then_nothing(self) -> None:
        """Assert the command produces no events (an idempotent repeat, nothing to do)."""
        self.then([])

    def then_raises(self, error: type[BaseException], match: str | None = None) -> BaseException:
        """Assert the command is refused with `error` (whose message matches `match` if given)."""
        try:
            produced = self._run()
        except error as exc:
            if match is not None and not re.search(match, str(exc)):
                raise AssertionError(f"{type(exc).__name__} raised, but {str(exc)!r} !~ {match!r}") from exc
            return exc
        raise AssertionError(
            f"expected {error.__name__}, but the command produced {produced!r}\n  command: {self.command!r}"
        )

    def then_state(self, expected: S | Callable[[S], object]) -> S:
        """Assert the state after the history and the command's events."""
        state = self.decider.fold(self._run(), self.decider.fold(self.history))
        _check_state(state, expected)
        return state


def _check_state(state: Any, expected: Any) -> None:
    if callable(expected) and not isinstance(expected, type):
        if not expected(state):
            raise AssertionError(f"the state does not satisfy the predicate: {state!r}")
    elif state != expected:
        raise AssertionError(f"state differs\n  expected: {expected!r}\n  actual:   {state!r}")


class StepClock:
    """A clock for tests: starts at `start` and moves `step` forward on every call."""

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        """The current time, then one step later for the next call."""
        current = self.now
        self.now += self.step
        return current


__all__ = [
    "DeciderSpecification",
    "Given",
    "MemoryCheckpointStore",
    "MemoryEventStore",
    "MemoryKeyStore",
    "MemorySnapshotStore",
    "StepClock",
    "When",
    "given",
]
