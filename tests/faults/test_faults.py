"""Each fault scenario once, briefly (the short form of `bench/faults.py`).

A run passes when every acknowledged append is stored, none twice, no batch half-stored, and
the scenario's own checks held (readiness, 503 answers, the projection, the metric).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import Postgres, scenarios, throwaway_postgres

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL of its own: scenario b stops it, which the session's shared one must not see."""
    with throwaway_postgres() as pg:
        yield pg


@pytest.mark.parametrize("name", list(scenarios()))
def test_fault(postgres: Postgres, name: str) -> None:
    counts = scenarios()[name](postgres)
    print(counts)
    assert counts.acknowledged_events > 0
    assert counts.found_events == counts.acknowledged_events
    assert (counts.lost, counts.duplicates, counts.partials, counts.in_doubt) == (0, 0, 0, 0), counts
    assert not counts.problems, counts
