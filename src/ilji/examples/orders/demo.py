"""`ilji demo orders`: orders and customer credit, coordinated by a process manager."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

from ilji import SystemStreamStore
from ilji.app import CommandContext, StreamCheckpointStore
from ilji.examples.orders.domain import (
    PlaceOrder,
    RegisterCustomer,
    customer_repository,
    events,
    order_repository,
)
from ilji.examples.orders.process import OrderCreditProcess, runner


async def run_demo(store: SystemStreamStore, print_fn: Callable[[str], None] = print) -> None:
    """Place two orders; the process manager approves one and rejects the other."""
    say = print_fn
    run = uuid.uuid4().hex[:6]
    orders, customers = order_repository(store), customer_repository(store)
    customer_id, first, second = f"ann-{run}", f"o1-{run}", f"o2-{run}"
    checkpoints = StreamCheckpointStore(store)
    credit = OrderCreditProcess(store)
    process = runner(store, checkpoints, credit)

    say("Orders and customer credit — microservices.io's Event Sourcing pattern example")
    say("")
    say(f"1. A customer is registered with a credit limit of 100 (stream {customers.stream(customer_id)!r}).")
    registered = await customers.handle(
        customer_id, RegisterCustomer("Ann", Decimal(100)), CommandContext(user="sales")
    )
    assert registered.append is not None
    start = registered.append.first_position - 1  # this walkthrough's events come after it

    say("2. She places two orders: 70, then 50. Each order starts as pending; the order service")
    say("   does not call the customer service — it only records OrderPlaced.")
    await orders.handle(first, PlaceOrder(customer_id, Decimal(70)), CommandContext(user="ann"))
    await orders.handle(second, PlaceOrder(customer_id, Decimal(50)), CommandContext(user="ann"))
    for order_id in (first, second):
        state = (await orders.load(order_id)).state
        say(f"   order {order_id}: {state.status}")

    say("3. The process manager follows the global log from its own checkpoint. It reacts to")
    say("   OrderPlaced with ReserveCredit, and to the customer's answer with Approve/RejectOrder.")
    rounds = 0
    while await process.catch_up():
        rounds += 1  # each round reacts to the events the previous round caused
    if credit.set_aside:
        count = len(credit.set_aside)
        say(f"   ({count} OrderPlaced event(s) written by someone else, without a customer, set aside)")
    for order_id in (first, second):
        state = (await orders.load(order_id)).state
        extra = f" ({state.reason})" if state.reason else ""
        say(f"   order {order_id}: {state.status}{extra}")
    customer = (await customers.load(customer_id)).state
    say(f"   Ann's credit: {customer.available} of {customer.credit_limit} left.")

    position = await checkpoints.load(process.projection.name)
    say(f"4. Its position is kept in the stream {checkpoints.stream(process.projection.name)!r}: {position}.")
    say("   A crash before saving it means events are delivered again. Redelivering every event now:")
    before = await store.read_all(start, 10_000, types=OrderCreditProcess.types)
    count_before = len(await store.read_all(start, 10_000, types=events.names()))
    again = OrderCreditProcess(store)
    for event in before:
        await again.handle(event)
    count_after = len(await store.read_all(start, 10_000, types=events.names()))
    say(
        f"   {len(before)} events redelivered, {count_after - count_before} new events: every command it sent"
    )
    say("   again was already done, and the deciders said so by deciding nothing.")

    say(f"5. Everything that followed from order {first} carries its correlation id; each event's")
    say("   causation id is the event (or command) that directly caused it:")
    [placed] = await store.read_stream(orders.stream(first), 1, 1)
    correlation = placed.metadata["correlation_id"]
    names = {placed.metadata["command_id"]: "the PlaceOrder command"}
    for event in await store.read_all(start, 10_000, types=events.names()):
        if event.metadata.get("correlation_id") != correlation:
            continue
        cause = names.get(event.metadata.get("causation_id"), "?")
        say(f"   {event.type:<16} in {event.stream:<22} caused by {cause}")
        names[str(event.id)] = event.type
