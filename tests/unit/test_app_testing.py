"""The given / when / then helpers report what a test author needs to see."""

from __future__ import annotations

import pytest

from ilji.testing import DeciderSpecification, given
from tests.unit.test_app_repository import Add, Added, Removed, Tally, WouldGoNegative, tally_decider

spec = DeciderSpecification(tally_decider)


def test_then_passes_on_the_expected_events() -> None:
    assert spec.given([Added(2)]).when(Add(-1)).then([Removed(1)]) == [Removed(1)]
    given(tally_decider, []).when(Add(0)).then_nothing()


def test_then_fails_with_both_lists() -> None:
    with pytest.raises(AssertionError, match=r"expected: \[Added\(amount=2\)\]"):
        spec.given([]).when(Add(1)).then([Added(2)])


def test_then_raises_checks_the_type_and_message() -> None:
    error = spec.given([Added(1)]).when(Add(-2)).then_raises(WouldGoNegative, match="1 \\+ -2")
    assert isinstance(error, WouldGoNegative)
    with pytest.raises(AssertionError, match="expected WouldGoNegative"):
        spec.given([]).when(Add(1)).then_raises(WouldGoNegative)
    with pytest.raises(AssertionError, match="!~"):
        spec.given([]).when(Add(-1)).then_raises(WouldGoNegative, match="nope")


def test_then_state_compares_or_applies_a_predicate() -> None:
    spec.given([Added(1)]).when(Add(2)).then_state(Tally(3, 2, (1, 2)))
    spec.given([Added(1), Removed(1)]).then_state(lambda s: s.total == 0)
    with pytest.raises(AssertionError, match="state differs"):
        spec.given([Added(1)]).then_state(Tally())
    with pytest.raises(AssertionError, match="predicate"):
        spec.given([]).when(Add(1)).then_state(lambda s: s.total == 5)
