"""What makes a runner stop working under its lease, and how it gives the lease back (no database)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ilji.projections import LeaseLost
from ilji.projections import sql as projection_sql
from ilji.projections.lease import Interrupted, Interruption, Lease, LeaseKeeper
from ilji.projections.metrics import PartitionMetrics


def lease() -> Lease:
    return Lease(token=7, position=100, partitions=1)


def test_a_lease_in_good_standing_lets_the_runner_go_on() -> None:
    lease().check()


def test_an_interruption_stops_the_runner_with_its_reason() -> None:
    held = lease()
    held.interrupt_for(Interruption.PAUSED)
    assert held.wake.is_set()
    with pytest.raises(Interrupted) as stopped:
        held.check()
    assert stopped.value.reason is Interruption.PAUSED
    assert str(stopped.value) == "paused"


def test_a_lost_lease_wins_over_an_interruption_and_keeps_its_first_reason() -> None:
    held = lease()
    held.interrupt_for(Interruption.SHUTDOWN)
    held.lose("taken over by another worker")
    held.lose("renewals failing for longer than the lease TTL")
    with pytest.raises(LeaseLost, match="taken over by another worker"):
        held.check()


async def test_a_pause_between_attempts_ends_when_the_lease_is_interrupted() -> None:
    held = lease()
    asyncio.get_running_loop().call_soon(held.interrupt_for, Interruption.RETIRED)
    with pytest.raises(Interrupted):
        async with asyncio.timeout(30):  # a generous bound: the pause itself asks for an hour
            await held.sleep(3600)
    assert not held.wake.is_set()


class Recording:
    """A stand-in for `Database`: records the statements run through it."""

    def __init__(self) -> None:
        self.statements: list[tuple[bytes, dict[str, Any]]] = []

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Recording]:  # noqa: ASYNC109
        yield self

    async def execute(self, query: bytes, params: dict[str, Any]) -> None:
        self.statements.append((query, params))


def keeper(database: Recording) -> LeaseKeeper:
    metrics = PartitionMetrics("seats", 1, 0)
    return LeaseKeeper(
        database,  # type: ignore[arg-type]
        projection="seats",
        version=1,
        partition=0,
        worker_id="w1",
        lease_ttl=5.0,
        metrics=metrics,
    )


@pytest.mark.parametrize(
    ("reason", "statement"),
    [
        (Interruption.SHUTDOWN, "release"),
        (Interruption.PAUSED, "release"),
        (Interruption.REBALANCE, "release"),
        (Interruption.RETIRED, "retire"),
        (Interruption.FAILED, None),  # fail.sql released it already
    ],
)
async def test_each_interruption_gives_the_lease_back_its_own_way(
    reason: Interruption, statement: str | None
) -> None:
    database = Recording()
    held = lease()
    held.interrupt_for(reason)
    await keeper(database).give_back(held)
    expected = [projection_sql.load(statement)] if statement else []
    assert [query for query, _ in database.statements] == expected
    for _, params in database.statements:
        assert (params["owner"], params["token"], params["partition"]) == ("w1", 7, 0), (
            "fenced by owner and token"
        )


async def test_a_lost_lease_is_not_given_back_but_counted() -> None:
    database = Recording()
    held = lease()
    held.lose("taken over by another worker")
    keeping = keeper(database)
    await keeping.give_back(held)
    assert database.statements == []
    assert keeping.metrics.leases_lost == 1
