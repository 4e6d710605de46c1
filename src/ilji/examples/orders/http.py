"""HTTP routes of the orders example (mounted by `ilji serve --example orders`).

Placing an order only records `OrderPlaced`; the answer comes from the process manager.
`POST /process/catch-up` runs it once (a deployment would run `ProjectionRunner.run` in the
background instead). A rule's refusal (`CommandRejected`) is left to the server's problem
table: a `409 Conflict` with the rule's code.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from ilji import SnapshotStore, SystemStreamStore
from ilji.app import CommandContext, StreamCheckpointStore
from ilji.examples.orders.domain import PlaceOrder, RegisterCustomer, customer_repository, order_repository
from ilji.examples.orders.process import runner


class CustomerBody(BaseModel):
    """Body of `PUT /customers/{id}`."""

    name: str = Field(min_length=1, max_length=200)
    credit_limit: Decimal = Field(ge=0)


class OrderBody(BaseModel):
    """Body of `PUT /orders/{id}`."""

    customer_id: str = Field(min_length=1, max_length=100)
    total: Decimal = Field(gt=0)


def router(store: SystemStreamStore, snapshots: SnapshotStore | None = None) -> APIRouter:
    """The orders routes on `store`."""
    orders = order_repository(store, snapshots)
    customers = customer_repository(store, snapshots)
    process = runner(store, StreamCheckpointStore(store))
    api = APIRouter(prefix="/examples/orders", tags=["example: orders"])
    context = CommandContext(user="http")

    @api.put("/customers/{customer_id}")
    async def register(customer_id: str, body: CustomerBody) -> dict[str, Any]:
        """Register a customer with a credit limit."""
        result = await customers.handle(customer_id, RegisterCustomer(body.name, body.credit_limit), context)
        return {"version": result.version}

    @api.put("/orders/{order_id}")
    async def place(order_id: str, body: OrderBody) -> dict[str, Any]:
        """Place an order (pending until the process manager has run)."""
        result = await orders.handle(order_id, PlaceOrder(body.customer_id, body.total), context)
        return {"version": result.version, "status": result.state.status}

    @api.get("/orders/{order_id}")
    async def show(order_id: str) -> dict[str, Any]:
        """An order's status."""
        loaded = await orders.load(order_id)
        if loaded.version == 0:
            raise HTTPException(404, detail="no such order")
        state = loaded.state
        return {"status": state.status, "total": str(state.total), "reason": state.reason}

    @api.get("/customers/{customer_id}")
    async def credit(customer_id: str) -> dict[str, Any]:
        """A customer's credit."""
        loaded = await customers.load(customer_id)
        if loaded.version == 0:
            raise HTTPException(404, detail="no such customer")
        state = loaded.state
        return {
            "name": state.name,
            "credit_limit": str(state.credit_limit),
            "available": str(state.available),
        }

    @api.post("/process/catch-up")
    async def catch_up() -> dict[str, int]:
        """Run the process manager until it has nothing left to react to."""
        total = 0
        while handled := await process.catch_up():
            total += handled
        return {"handled": total}

    return api
