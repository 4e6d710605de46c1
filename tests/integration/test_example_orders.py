"""The orders example on PostgreSQL: the process manager with its position stored in the store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from ilji import PostgresEventStore
from ilji.app import StreamCheckpointStore
from ilji.examples.orders.demo import run_demo
from ilji.examples.orders.domain import PlaceOrder, RegisterCustomer, customer_repository, order_repository
from ilji.examples.orders.process import OrderCreditProcess, runner


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[PostgresEventStore]:
    s = await PostgresEventStore.open(database_url, max_size=5, notify=False)
    try:
        yield s
    finally:
        await s.close()


async def test_the_demo_runs_on_postgres_twice(pg: PostgresEventStore) -> None:
    for _ in range(2):  # the second run resumes the process manager from its stored position
        lines: list[str] = []
        await run_demo(pg, lines.append)
        text = "\n".join(lines)
        assert "rejected (credit limit exceeded: 50 asked, 30 available)" in text
        assert ", 0 new events" in text


async def test_redelivery_changes_nothing_and_the_position_survives_a_restart(pg: PostgresEventStore) -> None:
    orders, customers = order_repository(pg), customer_repository(pg)
    run = uuid.uuid4().hex[:8]
    registered = await customers.handle(f"c{run}", RegisterCustomer("Cy", Decimal(10)))
    assert registered.append is not None
    start = registered.append.first_position - 1
    await orders.handle(f"a{run}", PlaceOrder(f"c{run}", Decimal(6)))
    await orders.handle(f"b{run}", PlaceOrder(f"c{run}", Decimal(6)))
    while await runner(pg, StreamCheckpointStore(pg)).catch_up():
        pass
    assert (await orders.load(f"a{run}")).state.status == "approved"
    assert (await orders.load(f"b{run}")).state.status == "rejected"
    mine = await pg.read_all(start, 1000, types=OrderCreditProcess.types)
    count = len(await pg.read_all(start, 1000))
    process = OrderCreditProcess(pg)
    for event in [*mine, *mine]:
        await process.handle(event)
    assert len(await pg.read_all(start, 1000)) == count
    assert await runner(pg, StreamCheckpointStore(pg)).catch_up() == 0
