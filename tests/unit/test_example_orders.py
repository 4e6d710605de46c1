"""The orders example: both deciders in given/when/then form, the process manager, HTTP, demo."""

from __future__ import annotations

from decimal import Decimal

import httpx
from fastapi import FastAPI

from ilji import NO_STREAM, MemoryEventStore, NewEvent
from ilji.app import CommandRejected, ProjectionRunner, StreamCheckpointStore
from ilji.examples.orders.demo import run_demo
from ilji.examples.orders.domain import (
    ApproveOrder,
    CreditLimitExceeded,
    CreditReserved,
    CustomerNotFound,
    CustomerRegistered,
    OrderApproved,
    OrderPlaced,
    OrderRejected,
    OrderRuleBroken,
    PlaceOrder,
    RegisterCustomer,
    RejectOrder,
    ReserveCredit,
    customer_decider,
    customer_repository,
    events,
    order_decider,
    order_repository,
)
from ilji.examples.orders.http import router
from ilji.examples.orders.process import OrderCreditProcess, runner
from ilji.server import problems
from ilji.testing import DeciderSpecification

orders = DeciderSpecification(order_decider)
customers = DeciderSpecification(customer_decider)
placed = OrderPlaced("ann", Decimal(70))
ann = CustomerRegistered("Ann", Decimal(100))


def test_an_order_is_placed_pending() -> None:
    orders.given([]).when(PlaceOrder("ann", Decimal(70))).then([placed])
    orders.given([placed]).when(PlaceOrder("ann", Decimal(70))).then_nothing()
    orders.given([placed]).when(PlaceOrder("bob", Decimal(70))).then_raises(OrderRuleBroken)
    orders.given([]).when(PlaceOrder("ann", Decimal(0))).then_raises(OrderRuleBroken)
    orders.given([placed]).then_state(lambda o: o.status == "pending")


def test_an_order_is_approved_or_rejected_once() -> None:
    orders.given([placed]).when(ApproveOrder()).then([OrderApproved()])
    orders.given([placed]).when(RejectOrder("no")).then([OrderRejected("no")])
    orders.given([placed, OrderApproved()]).when(ApproveOrder()).then_nothing()
    orders.given([placed, OrderRejected("no")]).when(RejectOrder("no")).then_nothing()
    orders.given([placed, OrderApproved()]).when(RejectOrder("no")).then_raises(OrderRuleBroken)
    orders.given([placed, OrderRejected("no")]).when(ApproveOrder()).then_raises(OrderRuleBroken)
    orders.given([]).when(ApproveOrder()).then_raises(OrderRuleBroken, "new order")


def test_credit_is_reserved_up_to_the_limit() -> None:
    customers.given([]).when(RegisterCustomer("Ann", Decimal(100))).then([ann])
    customers.given([ann]).when(RegisterCustomer("Ann", Decimal(100))).then_nothing()
    customers.given([ann]).when(RegisterCustomer("Bob", Decimal(1))).then_raises(CommandRejected)
    customers.given([ann]).when(ReserveCredit("o1", Decimal(70))).then([CreditReserved("o1", Decimal(70))])
    customers.given([ann, CreditReserved("o1", Decimal(70))]).when(ReserveCredit("o2", Decimal(50))).then(
        [CreditLimitExceeded("o2", Decimal(50), Decimal(30))]
    )
    customers.given([]).when(ReserveCredit("o1", Decimal(1))).then_raises(CustomerNotFound)


def test_asking_again_for_the_same_order_changes_nothing() -> None:
    customers.given([ann, CreditReserved("o1", Decimal(70))]).when(
        ReserveCredit("o1", Decimal(70))
    ).then_nothing()
    refused = [ann, CreditLimitExceeded("o1", Decimal(500), Decimal(100))]
    customers.given(refused).when(ReserveCredit("o1", Decimal(500))).then_nothing()
    customers.given(refused).then_state(lambda c: c.available == Decimal(100))


async def settle(store: MemoryEventStore, process_runner: ProjectionRunner) -> None:
    """Run the process manager until the reactions to its reactions are done too."""
    while await process_runner.catch_up():
        pass


async def test_the_process_manager_approves_rejects_and_is_idempotent() -> None:
    store = MemoryEventStore()
    order_repo, customer_repo = order_repository(store), customer_repository(store)
    await customer_repo.handle("ann", RegisterCustomer("Ann", Decimal(100)))
    await order_repo.handle("o1", PlaceOrder("ann", Decimal(70)))
    await order_repo.handle("o2", PlaceOrder("ann", Decimal(50)))
    await order_repo.handle("o3", PlaceOrder("nobody", Decimal(5)))
    checkpoints = StreamCheckpointStore(store)
    await settle(store, runner(store, checkpoints))
    status = {o: (await order_repo.load(o)).state for o in ("o1", "o2", "o3")}
    assert {o: s.status for o, s in status.items()} == {"o1": "approved", "o2": "rejected", "o3": "rejected"}
    assert status["o3"].reason == "unknown customer"
    # Redelivery: every event the process manager reacts to, handled again by a fresh instance.
    everything = await store.read_all(0, 1000)
    again = OrderCreditProcess(store)
    for event in everything:
        if event.type in OrderCreditProcess.types:
            await again.handle(event)
    assert len(await store.read_all(0, 1000)) == len(everything)
    # Its position survives a restart: a new runner on the same checkpoint stream has nothing to do.
    assert await runner(store, StreamCheckpointStore(store)).catch_up() == 0
    assert (await customer_repo.load("ann")).state.available == Decimal(30)


async def test_an_order_placed_by_someone_else_is_set_aside_not_a_stop() -> None:
    # The README appends `OrderPlaced {"total": 12}` to `order-1` by hand: no customer, so this
    # domain cannot read it. The orders behind it must still be handled.
    store = MemoryEventStore()
    foreign = await store.append("order-1", [NewEvent("OrderPlaced", {"total": 12})], NO_STREAM)
    order_repo, customer_repo = order_repository(store), customer_repository(store)
    await customer_repo.handle("ann", RegisterCustomer("Ann", Decimal(100)))
    await order_repo.handle("o1", PlaceOrder("ann", Decimal(70)))
    credit = OrderCreditProcess(store)
    await settle(store, runner(store, StreamCheckpointStore(store), credit))
    assert (await order_repo.load("o1")).state.status == "approved"
    recorded = await store.read_stream("order-1")
    assert credit.set_aside == [str(recorded[0].id)]
    assert foreign.last_version == 1 and len(recorded) == 1  # nothing was appended in its name


async def test_reactions_carry_correlation_and_causation() -> None:
    store = MemoryEventStore()
    await customer_repository(store).handle("ann", RegisterCustomer("Ann", Decimal(100)))
    await order_repository(store).handle("o1", PlaceOrder("ann", Decimal(70)))
    await settle(store, runner(store, StreamCheckpointStore(store)))
    [placed_event, approved] = await store.read_stream("order-o1")
    [_, reserved] = await store.read_stream("customer-ann")
    correlation = placed_event.metadata["correlation_id"]
    assert reserved.metadata["correlation_id"] == correlation == approved.metadata["correlation_id"]
    assert reserved.metadata["causation_id"] == str(placed_event.id)
    assert approved.metadata["causation_id"] == str(reserved.id)
    assert reserved.metadata["user"] == "orders-credit-process"
    assert events.decode(approved) == OrderApproved()


async def test_http_routes() -> None:
    app = FastAPI()
    problems.install(app)  # as `ilji serve --example` mounts the routes: errors as problems
    app.include_router(router(MemoryEventStore()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        base = "/examples/orders"
        assert (await client.get(f"{base}/orders/o1")).status_code == 404
        assert (
            await client.put(f"{base}/customers/ann", json={"name": "Ann", "credit_limit": "100"})
        ).status_code == 200
        assert (
            await client.put(f"{base}/customers/ann", json={"name": "Bob", "credit_limit": "1"})
        ).status_code == 409
        placed_now = await client.put(f"{base}/orders/o1", json={"customer_id": "ann", "total": "60"})
        assert placed_now.json() == {"version": 1, "status": "pending"}
        assert (
            await client.put(f"{base}/orders/o1", json={"customer_id": "bob", "total": "1"})
        ).status_code == 409
        assert (await client.post(f"{base}/process/catch-up")).json() == {"handled": 2}
        assert (await client.get(f"{base}/orders/o1")).json()["status"] == "approved"
        assert (await client.get(f"{base}/customers/ann")).json()["available"] == "40"
        assert (await client.get(f"{base}/customers/bob")).status_code == 404


async def test_the_demo_explains_each_step() -> None:
    lines: list[str] = []
    await run_demo(MemoryEventStore(), lines.append)
    text = "\n".join(lines)
    assert "approved" in text
    assert "rejected (credit limit exceeded: 50 asked, 30 available)" in text
    assert "0 new events" in text
    assert "CreditReserved   in customer-" in text
