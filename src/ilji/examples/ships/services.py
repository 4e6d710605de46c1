"""The ships example's edges: the exchange-rate query, the customs gateway, and the tracker read model.

- `ShippingService.unload` asks the `ExchangeRates` service once, live, and records the answer in
  the `CargoUnloaded` event; replays and rebuilds read it from there and never ask again.
- `ShipTracker` is a read model over every ship stream: each ship's corrected state and where
  every piece of cargo is. When a ship arrives with cargo aboard it notifies customs through a
  gateway wrapped in `SilentDuringReplay`, so a complete rebuild (`ProjectionRunner.rebuild`)
  does not notify customs a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from ilji import EventStore, RecordedEvent, SnapshotStore
from ilji.app import CommandContext, SilentDuringReplay, UnknownEvent
from ilji.examples.ships.domain import PORTS, ArrivalCorrected, Ship, ShipArrived, decider, events, repository


class ExchangeRates(Protocol):
    """An external service: how many won one unit of `currency` was worth on a day."""

    async def krw_rate(self, currency: str, on: date) -> Decimal:
        """The rate."""
        ...


class CustomsGateway(Protocol):
    """An external system that must hear about cargo arriving in its country."""

    async def notify(self, ship: str, port: str, cargo: list[str]) -> None:
        """Tell customs at `port` that `ship` arrived carrying `cargo`."""
        ...


@dataclass
class FakeExchangeRates:
    """A stand-in for a rate service: fixed rates, and a count of the questions asked."""

    rates: dict[str, Decimal] = field(
        default_factory=lambda: {"USD": Decimal("1350"), "EUR": Decimal("1450")}
    )
    calls: int = 0

    async def krw_rate(self, currency: str, on: date) -> Decimal:
        """Look the rate up (counted)."""
        self.calls += 1
        return Decimal(1) if currency == "KRW" else self.rates[currency]


@dataclass
class RecordingCustoms:
    """A stand-in for customs that keeps the notifications it gets."""

    notifications: list[tuple[str, str, list[str]]] = field(default_factory=list)

    async def notify(self, ship: str, port: str, cargo: list[str]) -> None:
        """Keep the notification."""
        self.notifications.append((ship, port, cargo))


class ShippingService:
    """Commands on ships that need an answer from outside first (the exchange rate)."""

    def __init__(
        self, store: EventStore, rates: ExchangeRates, snapshots: SnapshotStore | None = None
    ) -> None:
        self.ships = repository(store, snapshots)
        self.rates = rates

    async def unload(
        self, ship_id: str, cargo: str, when: datetime, context: CommandContext | None = None
    ) -> None:
        """Unload cargo, recording the exchange rate of its currency on that day in the event."""
        ship = (await self.ships.load(ship_id)).state
        loaded = ship.aboard.get(cargo)
        currency = loaded.currency if loaded is not None and loaded.currency else "KRW"
        # The query happens here, once, outside the decider; its answer becomes part of the fact.
        rate = await self.rates.krw_rate(currency, when.date())
        await self.ships.handle(ship_id, lambda s: s.unload(cargo, rate, when), context)


@dataclass(frozen=True, slots=True)
class CargoLocation:
    """Where a piece of cargo is: aboard a ship (`port` None at sea) or unloaded in a port."""

    cargo: str
    ship: str
    port: str | None
    aboard: bool


class ShipTracker:
    """An `InProcessProjection` over all ship streams: ships' states, cargo locations, customs notices."""

    name = "ships_tracker"

    def __init__(self, customs: CustomsGateway) -> None:
        self.notify_customs = SilentDuringReplay(customs.notify)
        self.ships: dict[str, Ship] = {}
        self.position = 0

    async def handle(self, event: RecordedEvent) -> None:
        """Fold the event into its ship; tell customs about arrivals with cargo (live only)."""
        if event.position <= self.position or event.category != "ship":
            return
        self.position = event.position
        ship_id = event.stream.split("-", 1)[1]
        typed = events.decode(event)
        if isinstance(typed, UnknownEvent):
            return
        ship = decider.evolve(self.ships.get(ship_id) or decider.initial_state(), typed)
        self.ships[ship_id] = ship
        if isinstance(typed, ShipArrived) and ship.aboard:
            await self.notify_customs(ship.name or ship_id, typed.port, sorted(ship.aboard))
        elif isinstance(typed, ArrivalCorrected) and ship.aboard and ship.port == typed.port:
            # The ship is still in the corrected port with cargo: customs there must hear of it.
            await self.notify_customs(ship.name or ship_id, typed.port, sorted(ship.aboard))

    async def reset(self) -> None:
        """Forget everything (before a complete rebuild)."""
        self.ships.clear()
        self.position = 0

    def cargo_locations(self) -> dict[str, CargoLocation]:
        """Where each piece of cargo seen so far is now."""
        found: dict[str, CargoLocation] = {}
        for ship_id, ship in self.ships.items():
            for move in ship.cargo_moves:
                aboard = move.action == "loaded"
                found[move.cargo] = CargoLocation(move.cargo, ship_id, None if aboard else move.port, aboard)
            for cargo in ship.aboard:
                found[cargo] = CargoLocation(cargo, ship_id, ship.port, True)
        return found

    def summary(self) -> dict[str, Any]:
        """Ships and their ports, for printing."""
        return {ship_id: PORTS.get(ship.port or "", ("at sea",))[0] for ship_id, ship in self.ships.items()}
