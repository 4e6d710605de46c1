"""Ships, ports and cargo, in the aggregate-class style.

Every ship event carries `occurred_at`, when it happened in the world, which differs from
`recorded_at`, when Ilji stored it. "Where was the ship on date D" reads the first; "what did we
believe at time T" (a temporal query on the stream) reads the second.

Retroactive correction (Fowler): when an arrival turns out to have been recorded with the wrong
port, an `ArrivalCorrected` event is appended (nothing stored changes). Applying it reverses the
ship to before the wrong arrival, puts the right port in its place and replays every later step,
so the cargo loaded or unloaded during that visit follows to the right port.

The exchange rate of an unloading is an external query: its answer is recorded in the
`CargoUnloaded` event, so replaying the history reuses the answer instead of asking again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ilji import EventStore, SnapshotStore
from ilji.app import (
    AggregateCommand,
    AggregateRoot,
    AggregateType,
    CommandRejected,
    DataclassStateCodec,
    DomainView,
    EventRegistry,
    Repository,
    SnapshotPolicy,
    aggregate_decider,
)

#: The ports this example knows: code → (name, country).
PORTS: dict[str, tuple[str, str]] = {
    "KRPUS": ("Busan", "KR"),
    "JPYOK": ("Yokohama", "JP"),
    "CNSHA": ("Shanghai", "CN"),
    "SGSIN": ("Singapore", "SG"),
    "NLRTM": ("Rotterdam", "NL"),
    "USLAX": ("Los Angeles", "US"),
}

events = EventRegistry()

# -- events ------------------------------------------------------------------------------------


@events.register
@dataclass(frozen=True, slots=True)
class ShipRegistered:
    """A ship was entered into the tracking system."""

    name: str


@events.register
@dataclass(frozen=True, slots=True)
class ShipArrived:
    """The ship arrived at a port."""

    port: str
    occurred_at: datetime


@events.register
@dataclass(frozen=True, slots=True)
class ShipDeparted:
    """The ship left the port it was in (the port follows from the arrival before it)."""

    occurred_at: datetime


@events.register
@dataclass(frozen=True, slots=True)
class CargoLoaded:
    """Cargo was loaded in the current port, with its declared value."""

    cargo: str
    value: Decimal
    currency: str
    occurred_at: datetime


@events.register
@dataclass(frozen=True, slots=True)
class CargoUnloaded:
    """Cargo was unloaded in the current port; `krw_rate` is the recorded exchange-rate answer."""

    cargo: str
    krw_rate: Decimal
    occurred_at: datetime


@events.register
@dataclass(frozen=True, slots=True)
class ArrivalCorrected:
    """The arrival that happened at `arrival_occurred_at` was really at `port` (a retroactive fix)."""

    arrival_occurred_at: datetime
    wrong_port: str
    port: str


# -- state -------------------------------------------------------------------------------------


class ShipRuleBroken(CommandRejected):
    """A ship command that does not fit where the ship is or what it carries."""

    code = "ship-rule-broken"


@dataclass(frozen=True, slots=True)
class Step:
    """One movement in the ship's (corrected) timeline."""

    kind: Literal["arrived", "departed", "loaded", "unloaded"]
    occurred_at: datetime
    port: str | None = None
    cargo: str | None = None
    value: Decimal | None = None
    currency: str | None = None
    krw_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CargoMove:
    """Where a piece of cargo went on or off the ship, and its value in won when unloaded."""

    cargo: str
    action: Literal["loaded", "unloaded"]
    port: str
    occurred_at: datetime
    value_krw: Decimal | None = None


@dataclass
class Ship(AggregateRoot[Any]):
    """A ship: its timeline of steps, and what follows from it (port, cargo aboard, cargo moves)."""

    name: str | None = None
    timeline: list[Step] = field(default_factory=list)
    port: str | None = None
    aboard: dict[str, Step] = field(default_factory=dict)
    cargo_moves: list[CargoMove] = field(default_factory=list)

    # -- commands: check the rules, then record --------------------------------------------------

    def register(self, name: str) -> None:
        """Enter the ship into the system (repeating it is harmless)."""
        if self.name is None:
            self.record(ShipRegistered(name))
        elif self.name != name:
            raise ShipRuleBroken(f"this ship is registered as {self.name!r}")

    def arrive(self, port: str, when: datetime) -> None:
        """Arrive at `port`."""
        self._registered()
        _known(port)
        if self.port is not None:
            raise ShipRuleBroken(f"{self.name} is in {self.port}; it must depart first")
        self._not_before_last_step(when)
        self.record(ShipArrived(port, when))

    def depart(self, when: datetime) -> None:
        """Leave the current port."""
        self._registered()
        if self.port is None:
            raise ShipRuleBroken(f"{self.name} is at sea")
        self._not_before_last_step(when)
        self.record(ShipDeparted(when))

    def load(self, cargo: str, value: Decimal, currency: str, when: datetime) -> None:
        """Load cargo in the current port."""
        self._in_port(when)
        if cargo in self.aboard:
            raise ShipRuleBroken(f"{cargo} is already aboard")
        self.record(CargoLoaded(cargo, value, currency, when))

    def unload(self, cargo: str, krw_rate: Decimal, when: datetime) -> None:
        """Unload cargo in the current port, with the exchange rate the caller looked up."""
        self._in_port(when)
        if cargo not in self.aboard:
            raise ShipRuleBroken(f"{cargo} is not aboard {self.name}")
        self.record(CargoUnloaded(cargo, krw_rate, when))

    def correct_arrival(self, arrival_occurred_at: datetime, port: str) -> None:
        """Say that the arrival at `arrival_occurred_at` was really at `port`."""
        self._registered()
        _known(port)
        arrival = next(
            (s for s in self.timeline if s.kind == "arrived" and s.occurred_at == arrival_occurred_at), None
        )
        if arrival is None:
            raise ShipRuleBroken(f"no arrival of {self.name} at {arrival_occurred_at.isoformat()}")
        if arrival.port == port:
            return  # already right: nothing to correct
        assert arrival.port is not None
        self.record(ArrivalCorrected(arrival_occurred_at, arrival.port, port))

    def _registered(self) -> None:
        if self.name is None:
            raise ShipRuleBroken("no such ship")

    def _in_port(self, when: datetime) -> None:
        self._registered()
        if self.port is None:
            raise ShipRuleBroken(f"{self.name} is at sea")
        self._not_before_last_step(when)

    def _not_before_last_step(self, when: datetime) -> None:
        if self.timeline and when < self.timeline[-1].occurred_at:
            raise ShipRuleBroken("steps are recorded in the order they happen; use a correction")

    # -- applying events ---------------------------------------------------------------------------

    def apply(self, event: Any) -> None:
        """Change the ship for one event."""
        match event:
            case ShipRegistered(name):
                self.name = name
            case ShipArrived(port, when):
                self._step(Step("arrived", when, port=port))
            case ShipDeparted(when):
                self._step(Step("departed", when))
            case CargoLoaded(cargo, value, currency, when):
                self._step(Step("loaded", when, cargo=cargo, value=value, currency=currency))
            case CargoUnloaded(cargo, rate, when):
                self._step(Step("unloaded", when, cargo=cargo, krw_rate=rate))
            case ArrivalCorrected(when, _, port):
                self._correct(when, port)

    def _step(self, step: Step) -> None:
        self.timeline.append(step)
        self._advance(step)

    def _advance(self, step: Step) -> None:
        """What one step does to the derived fields (shared by live events and replays)."""
        if step.kind == "arrived":
            self.port = step.port
        elif step.kind == "departed":
            self.port = None
        elif step.kind == "loaded":
            assert step.cargo is not None and self.port is not None
            self.aboard[step.cargo] = step
            self.cargo_moves.append(CargoMove(step.cargo, "loaded", self.port, step.occurred_at))
        elif step.kind == "unloaded":
            assert step.cargo is not None and self.port is not None
            loaded = self.aboard.pop(step.cargo)
            value = loaded.value * step.krw_rate if loaded.value is not None and step.krw_rate else None
            self.cargo_moves.append(CargoMove(step.cargo, "unloaded", self.port, step.occurred_at, value))

    def _correct(self, arrival_occurred_at: datetime, port: str) -> None:
        # Reverse: forget everything derived; fix the arrival; replay every step in order.
        self.timeline = [
            Step("arrived", s.occurred_at, port=port)
            if s.kind == "arrived" and s.occurred_at == arrival_occurred_at
            else s
            for s in self.timeline
        ]
        self.port, self.aboard, self.cargo_moves = None, {}, []
        for step in self.timeline:
            self._advance(step)

    # -- queries -------------------------------------------------------------------------------

    def location_on(self, when: datetime) -> str | None:
        """The port the ship was in at `when` (None: at sea, or not yet tracked)."""
        port = None
        for step in self.timeline:
            if step.occurred_at > when:
                break
            if step.kind == "arrived":
                port = step.port
            elif step.kind == "departed":
                port = None
        return port

    def cargo_history(self, cargo: str) -> list[CargoMove]:
        """Every move of one piece of cargo on this ship."""
        return [m for m in self.cargo_moves if m.cargo == cargo]


def _known(port: str) -> None:
    if port not in PORTS:
        raise ShipRuleBroken(f"unknown port {port!r}")


decider = aggregate_decider(Ship)

ship_type: AggregateType[AggregateCommand[Ship], Any, Ship] = AggregateType(
    "ship", decider, events, SnapshotPolicy(every=100, codec=DataclassStateCodec(Ship, schema_version=1))
)

#: How the console shows a ship stream version by version (`ilji serve --example ships`).
views = [DomainView(ship_type, title="Ship")]


def repository(
    store: EventStore, snapshots: SnapshotStore | None = None, **options: Any
) -> Repository[AggregateCommand[Ship], Any, Ship]:
    """The ship repository on `store` (options go to `Repository`)."""
    return Repository(store, ship_type, snapshots=snapshots, **options)
