"""Two aggregates that never call each other: orders, and customers with a credit limit.

An order is placed as pending. It is approved or rejected only when the customer side has
answered, through events: `OrderPlaced` → (process manager) `ReserveCredit` → `CreditReserved`
or `CreditLimitExceeded` → (process manager) `ApproveOrder` or `RejectOrder`.
Both deciders treat a repeated command as done (they return no events), which is what makes
the process manager safe under redelivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from ilji import EventStore, SnapshotStore
from ilji.app import (
    AggregateType,
    CommandRejected,
    DataclassStateCodec,
    Decider,
    DomainView,
    EventRegistry,
    Repository,
    SnapshotPolicy,
    Step,
    handle_together,
)

events = EventRegistry()

# -- orders ------------------------------------------------------------------------------------


@events.register
@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """A customer placed an order; it waits for a credit check."""

    customer_id: str
    total: Decimal


@events.register
@dataclass(frozen=True, slots=True)
class OrderApproved:
    """The customer's credit covered the order."""


@events.register
@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The order could not be approved."""

    reason: str


OrderEvent = OrderPlaced | OrderApproved | OrderRejected


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Place an order for `total`."""

    customer_id: str
    total: Decimal


@dataclass(frozen=True, slots=True)
class ApproveOrder:
    """Approve the pending order."""


@dataclass(frozen=True, slots=True)
class RejectOrder:
    """Reject the pending order."""

    reason: str


OrderCommand = PlaceOrder | ApproveOrder | RejectOrder


class OrderRuleBroken(CommandRejected):
    """An order command that does not fit the order's state."""

    code = "order-rule-broken"


@dataclass(frozen=True, slots=True)
class Order:
    """An order's state."""

    status: Literal["new", "pending", "approved", "rejected"] = "new"
    customer_id: str | None = None
    total: Decimal = Decimal(0)
    reason: str | None = None


def decide_order(command: OrderCommand, state: Order) -> list[OrderEvent]:
    """What a command means for the order."""
    match command:
        case PlaceOrder(customer_id, total):
            if state.status != "new":
                if (state.customer_id, state.total) == (customer_id, total):
                    return []
                raise OrderRuleBroken("this order id is taken by another order")
            if total <= 0:
                raise OrderRuleBroken("an order's total must be positive")
            return [OrderPlaced(customer_id, total)]
        case ApproveOrder():
            if state.status == "approved":
                return []
            if state.status != "pending":
                raise OrderRuleBroken(f"a {state.status} order cannot be approved")
            return [OrderApproved()]
        case RejectOrder(reason):
            if state.status == "rejected":
                return []
            if state.status != "pending":
                raise OrderRuleBroken(f"a {state.status} order cannot be rejected")
            return [OrderRejected(reason)]
    raise TypeError(f"not an order command: {command!r}")


def evolve_order(state: Order, event: OrderEvent) -> Order:
    """Apply one order event."""
    match event:
        case OrderPlaced(customer_id, total):
            return Order("pending", customer_id, total)
        case OrderApproved():
            return replace(state, status="approved")
        case OrderRejected(reason):
            return replace(state, status="rejected", reason=reason)
    return state


order_decider: Decider[OrderCommand, OrderEvent, Order] = Decider(decide_order, evolve_order, Order)
order_type: AggregateType[OrderCommand, OrderEvent, Order] = AggregateType(
    "order", order_decider, events, SnapshotPolicy(every=20, codec=DataclassStateCodec(Order))
)

# -- customers ---------------------------------------------------------------------------------


@events.register
@dataclass(frozen=True, slots=True)
class CustomerRegistered:
    """A customer was registered with a credit limit."""

    name: str
    credit_limit: Decimal


@events.register
@dataclass(frozen=True, slots=True)
class CreditReserved:
    """Credit was set aside for an order."""

    order_id: str
    amount: Decimal


@events.register
@dataclass(frozen=True, slots=True)
class CreditLimitExceeded:
    """An order asked for more credit than the customer has left."""

    order_id: str
    amount: Decimal
    available: Decimal


CustomerEvent = CustomerRegistered | CreditReserved | CreditLimitExceeded


@dataclass(frozen=True, slots=True)
class RegisterCustomer:
    """Register a customer with a credit limit."""

    name: str
    credit_limit: Decimal


@dataclass(frozen=True, slots=True)
class ReserveCredit:
    """Set credit aside for an order (asking again for the same order changes nothing)."""

    order_id: str
    amount: Decimal


CustomerCommand = RegisterCustomer | ReserveCredit


class CustomerNotFound(CommandRejected):
    """No customer has this id."""

    code = "customer-not-found"


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer's credit: the limit, what is reserved per order, and orders refused."""

    name: str | None = None
    credit_limit: Decimal = Decimal(0)
    reserved: dict[str, Decimal] = field(default_factory=dict)
    refused: frozenset[str] = frozenset()

    @property
    def available(self) -> Decimal:
        """Credit left."""
        return self.credit_limit - sum(self.reserved.values(), Decimal(0))


def decide_customer(command: CustomerCommand, state: Customer) -> list[CustomerEvent]:
    """What a command means for the customer's credit."""
    match command:
        case RegisterCustomer(name, limit):
            if state.name is not None:
                return [] if (state.name, state.credit_limit) == (name, limit) else _taken()
            return [CustomerRegistered(name, limit)]
        case ReserveCredit(order_id, amount):
            if state.name is None:
                raise CustomerNotFound("no such customer")
            if order_id in state.reserved or order_id in state.refused:
                return []  # this order was answered already: say nothing new
            if amount > state.available:
                return [CreditLimitExceeded(order_id, amount, state.available)]
            return [CreditReserved(order_id, amount)]
    raise TypeError(f"not a customer command: {command!r}")


def _taken() -> list[CustomerEvent]:
    raise CommandRejected("this customer id is taken by another customer")


def evolve_customer(state: Customer, event: CustomerEvent) -> Customer:
    """Apply one customer event."""
    match event:
        case CustomerRegistered(name, limit):
            return replace(state, name=name, credit_limit=limit)
        case CreditReserved(order_id, amount):
            return replace(state, reserved={**state.reserved, order_id: amount})
        case CreditLimitExceeded(order_id, _, _):
            return replace(state, refused=state.refused | {order_id})
    return state


customer_decider: Decider[CustomerCommand, CustomerEvent, Customer] = Decider(
    decide_customer, evolve_customer, Customer
)
customer_type: AggregateType[CustomerCommand, CustomerEvent, Customer] = AggregateType(
    "customer", customer_decider, events, SnapshotPolicy(every=50, codec=DataclassStateCodec(Customer))
)


def _show_customer(state: Customer) -> dict[str, Any]:
    # The console's time travel shows the credit left beside the stored fields.
    return {
        "name": state.name,
        "credit_limit": state.credit_limit,
        "available": state.available,
        "reserved": state.reserved,
        "refused": sorted(state.refused),
    }


#: How the console shows order and customer streams version by version (`ilji serve --example orders`).
views = [
    DomainView(order_type, title="Order"),
    DomainView(customer_type, describe=_show_customer, title="Customer"),
]


def order_repository(
    store: EventStore, snapshots: SnapshotStore | None = None, **options: Any
) -> Repository[OrderCommand, OrderEvent, Order]:
    """The order repository on `store`."""
    return Repository(store, order_type, snapshots=snapshots, **options)


def customer_repository(
    store: EventStore, snapshots: SnapshotStore | None = None, **options: Any
) -> Repository[CustomerCommand, CustomerEvent, Customer]:
    """The customer repository on `store`."""
    return Repository(store, customer_type, snapshots=snapshots, **options)


async def place_order_reserving_credit(
    store: EventStore, order_id: str, customer_id: str, total: Decimal
) -> list[object]:
    """Place an order and answer its credit in one transaction (both streams, or neither).

    Honest only while orders and customers share one Ilji database: no order is ever stored
    without its credit answer, and no credit is held for an order that does not exist. The
    process manager (`process.py`) still approves or rejects the order from that answer: its
    `ReserveCredit` finds the order answered already and changes nothing. Across services (the
    customers' credit in another team's database) only the saga of `process.py` works.
    Returns the events stored for the order and for the customer.
    """
    results = await handle_together(
        [
            Step(order_repository(store), order_id, PlaceOrder(customer_id, total)),
            Step(customer_repository(store), customer_id, ReserveCredit(order_id, total)),
        ],
        max_retries=50,
    )
    return [event for result in results for event in result.events]
