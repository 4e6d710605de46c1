"""`handle_together`: several commands on several entities, one multi-stream append."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from itertools import pairwise

import pytest

from ilji import MemoryEventStore, PostgresEventStore
from ilji.app import Step, handle_together
from ilji.examples.orders.domain import (
    CustomerNotFound,
    PlaceOrder,
    RegisterCustomer,
    ReserveCredit,
    customer_repository,
    order_repository,
    place_order_reserving_credit,
)
from ilji.examples.orders.process import OrderCreditProcess

Store = PostgresEventStore | MemoryEventStore


async def test_orders_and_their_credit_commit_together_under_concurrency(any_store: Store) -> None:
    orders = order_repository(any_store)
    customers = customer_repository(any_store)
    customer = f"c{uuid.uuid4().hex[:10]}"
    await customers.handle(customer, RegisterCustomer("Ada", Decimal(50)))
    order_ids = [f"o{uuid.uuid4().hex[:10]}" for _ in range(12)]

    async def place(order_id: str) -> None:
        await place_order_reserving_credit(any_store, order_id, customer, Decimal(10))

    await asyncio.gather(*(place(o) for o in order_ids))
    state = (await customers.load(customer)).state
    assert sum(state.reserved.values()) == Decimal(50)
    assert len(state.reserved) == 5 and len(state.refused) == 7
    for order_id in order_ids:
        order = (await orders.load(order_id)).state
        assert order.status == "pending"  # every order was placed with its credit answer
    # Each order's OrderPlaced sits right before its customer's answer in the global log.
    log = await any_store.read_all(after=0, limit=10_000)
    mine = [
        e
        for e in log
        if e.stream in {orders.stream(o) for o in order_ids} or e.stream == customers.stream(customer)
    ]
    pairs = [(a, b) for a, b in pairwise(mine) if a.type == "OrderPlaced"]
    assert len(pairs) == 12
    assert all(b.data["order_id"] == a.stream.split("-", 1)[1] for a, b in pairs)


async def test_a_rejected_step_stores_nothing(any_store: Store) -> None:
    orders = order_repository(any_store)
    customers = customer_repository(any_store)
    order_id = f"o{uuid.uuid4().hex[:10]}"
    with pytest.raises(CustomerNotFound):
        await handle_together(
            [
                Step(orders, order_id, PlaceOrder("nobody", Decimal(10))),
                Step(customers, "nobody", ReserveCredit(order_id, Decimal(10))),
            ]
        )
    assert await any_store.stream_version(orders.stream(order_id)) == 0


async def test_the_process_manager_approves_an_order_placed_with_its_credit(any_store: Store) -> None:
    customers = customer_repository(any_store)
    customer, order_id = f"c{uuid.uuid4().hex[:10]}", f"o{uuid.uuid4().hex[:10]}"
    await customers.handle(customer, RegisterCustomer("Ada", Decimal(50)))
    stored = await place_order_reserving_credit(any_store, order_id, customer, Decimal(20))
    assert [type(e).__name__ for e in stored] == ["OrderPlaced", "CreditReserved"]
    process = OrderCreditProcess(any_store)
    streams = {order_repository(any_store).stream(order_id), customers.stream(customer)}
    for event in [e for e in await any_store.read_all(after=0, limit=10_000) if e.stream in streams]:
        await process.handle(event)  # OrderPlaced: its ReserveCredit changes nothing; CreditReserved: approve
    assert (await order_repository(any_store).load(order_id)).state.status == "approved"
    assert (await customers.load(customer)).state.reserved == {order_id: Decimal(20)}
