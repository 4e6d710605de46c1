"""HTTP routes of the ships example (mounted by `ilji serve --example ships`).

The exchange-rate service is the example's fake (fixed rates); pass a real one to `router`. A
rule's refusal (`CommandRejected`) is left to the server's problem table: a `409 Conflict` with
the rule's code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from ilji import EventStore, SnapshotStore
from ilji.app import CommandContext
from ilji.examples.ships.domain import PORTS, Ship
from ilji.examples.ships.services import ExchangeRates, FakeExchangeRates, ShippingService
from ilji.server import etag


class RegisterBody(BaseModel):
    """Body of `PUT /ships/{id}`."""

    name: str = Field(min_length=1, max_length=200)


class MoveBody(BaseModel):
    """An arrival (with `port`) or a departure."""

    when: datetime
    port: str | None = None


class CargoBody(BaseModel):
    """A load (with value and currency) or an unload."""

    cargo: str = Field(min_length=1, max_length=100)
    when: datetime
    value: Decimal | None = None
    currency: str = "KRW"


class CorrectionBody(BaseModel):
    """A retroactive correction of an arrival's port."""

    arrival_occurred_at: datetime
    port: str


def router(
    store: EventStore, snapshots: SnapshotStore | None = None, rates: ExchangeRates | None = None
) -> APIRouter:
    """The ship routes on `store`."""
    service = ShippingService(store, rates or FakeExchangeRates(), snapshots)
    ships = service.ships
    api = APIRouter(prefix="/examples/ships", tags=["example: ships"])
    context = CommandContext(user="http")

    async def run(ship_id: str, command: Callable[[Ship], object], response: Response) -> dict[str, Any]:
        result = await ships.handle(ship_id, command, context)
        response.headers["ETag"] = etag(result.version)
        return {"version": result.version, "events": [type(e).__name__ for e in result.events]}

    @api.put("/ships/{ship_id}")
    async def register(ship_id: str, body: RegisterBody, response: Response) -> dict[str, Any]:
        """Register a ship."""
        return await run(ship_id, lambda s: s.register(body.name), response)

    @api.post("/ships/{ship_id}/arrivals")
    async def arrive(ship_id: str, body: MoveBody, response: Response) -> dict[str, Any]:
        """Record an arrival."""
        if body.port is None:
            raise HTTPException(422, detail="an arrival needs a port")
        port = body.port
        return await run(ship_id, lambda s: s.arrive(port, body.when), response)

    @api.post("/ships/{ship_id}/departures")
    async def depart(ship_id: str, body: MoveBody, response: Response) -> dict[str, Any]:
        """Record a departure."""
        return await run(ship_id, lambda s: s.depart(body.when), response)

    @api.post("/ships/{ship_id}/loads")
    async def load(ship_id: str, body: CargoBody, response: Response) -> dict[str, Any]:
        """Record cargo loaded."""
        value = body.value if body.value is not None else Decimal(0)
        return await run(ship_id, lambda s: s.load(body.cargo, value, body.currency, body.when), response)

    @api.post("/ships/{ship_id}/unloads")
    async def unload(ship_id: str, body: CargoBody) -> dict[str, Any]:
        """Record cargo unloaded (the exchange rate is looked up and recorded)."""
        await service.unload(ship_id, body.cargo, body.when, context)
        return {"version": (await ships.load(ship_id)).version}

    @api.post("/ships/{ship_id}/corrections")
    async def correct(ship_id: str, body: CorrectionBody, response: Response) -> dict[str, Any]:
        """Correct the port of an earlier arrival (retroactively)."""
        return await run(ship_id, lambda s: s.correct_arrival(body.arrival_occurred_at, body.port), response)

    @api.get("/ships/{ship_id}")
    async def where(
        ship_id: str, on: datetime | None = None, as_of: datetime | None = None
    ) -> dict[str, Any]:
        """Where the ship is, or was `on` a date; `as_of` asks what was believed at that recorded time."""
        loaded = await (ships.state_at(ship_id, at=as_of) if as_of else ships.load(ship_id))
        ship = loaded.state
        if ship.name is None:
            raise HTTPException(404, detail="no such ship")
        port = ship.location_on(on) if on is not None else ship.port
        return {
            "name": ship.name,
            "port": port,
            "port_name": PORTS[port][0] if port else None,
            "aboard": sorted(ship.aboard),
            "version": loaded.version,
        }

    @api.get("/ships/{ship_id}/cargo/{cargo}")
    async def cargo_history(ship_id: str, cargo: str) -> list[dict[str, Any]]:
        """The moves of one piece of cargo on this ship (corrections included)."""
        ship = (await ships.load(ship_id)).state
        return [
            {
                "action": m.action,
                "port": m.port,
                "occurred_at": m.occurred_at.isoformat(),
                "value_krw": str(m.value_krw) if m.value_krw is not None else None,
            }
            for m in ship.cargo_history(cargo)
        ]

    return api
