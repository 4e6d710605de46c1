"""`ilji demo ships`: Fowler's ship-tracking walkthrough, printed step by step."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from ilji import EventStore
from ilji.app import CommandContext, MemoryCheckpointStore, ProjectionRunner
from ilji.examples.ships.domain import PORTS
from ilji.examples.ships.services import FakeExchangeRates, RecordingCustoms, ShippingService, ShipTracker


def _day(d: int) -> datetime:
    return datetime(2026, 3, d, 12, 0, tzinfo=UTC)


def _port(code: str | None) -> str:
    return "at sea" if code is None else f"{PORTS[code][0]} ({code})"


async def run_demo(store: EventStore, print_fn: Callable[[str], None] = print) -> None:
    """Sail a ship, correct a wrong arrival retroactively, and rebuild the read model."""
    say = print_fn
    rates, customs = FakeExchangeRates(), RecordingCustoms()
    service = ShippingService(store, rates)
    ships = service.ships
    ship_id = f"kmtc-{uuid.uuid4().hex[:6]}"
    clerk = CommandContext(user="harbour-clerk")
    tracker = ShipTracker(customs)
    runner = ProjectionRunner(store, tracker, MemoryCheckpointStore(), category="ship")

    say("Ship tracking — Martin Fowler's Event Sourcing example (aggregate-class style)")
    say("")
    say(f"1. The ship 'KMTC Seoul' sails. Each movement is an event in the stream {ships.stream(ship_id)!r};")
    say("   each event says when it happened (occurred_at) — Ilji adds when it was recorded.")
    await ships.handle(ship_id, lambda s: s.register("KMTC Seoul"), clerk)
    await ships.handle(ship_id, lambda s: s.arrive("KRPUS", _day(1)), clerk)
    await ships.handle(ship_id, lambda s: s.load("C-100", Decimal("10000"), "USD", _day(2)), clerk)
    await ships.handle(ship_id, lambda s: s.depart(_day(3)), clerk)
    await ships.handle(ship_id, lambda s: s.arrive("JPYOK", _day(6)), clerk)
    say("   Mar 1 arrives in Busan, Mar 2 loads cargo C-100 (declared 10,000 USD), Mar 3 departs,")
    say("   Mar 6 arrives in Yokohama — or so the clerk typed.")
    await service.unload(ship_id, "C-100", _day(7), clerk)
    say(f"   Mar 7 unloads C-100. The exchange-rate service is asked once ({rates.calls} call) and its")
    say("   answer is stored in the CargoUnloaded event.")
    await ships.handle(ship_id, lambda s: s.depart(_day(8)), clerk)
    await ships.handle(ship_id, lambda s: s.arrive("SGSIN", _day(12)), clerk)
    say("   Mar 8 departs, Mar 12 arrives in Singapore.")

    await runner.catch_up()
    say("2. The tracker read model catches up. Customs were notified of arrivals with cargo aboard:")
    for ship_name, port, aboard in customs.notifications:
        say(f"   → customs at {_port(port)}: {ship_name} carries {', '.join(aboard)}")

    ship = (await ships.load(ship_id)).state
    say(f"3. Where was the ship on Mar 7? {_port(ship.location_on(_day(7)))}.")
    believed_until = (await ships.history(ship_id))[-1].recorded.recorded_at

    say("4. A retroactive correction: the Mar 6 arrival was really in Shanghai. Nothing stored")
    say("   changes; an ArrivalCorrected event is appended. Applying it reverses the ship to before")
    say("   that arrival, puts Shanghai in its place and replays every later step.")
    await ships.handle(ship_id, lambda s: s.correct_arrival(_day(6), "CNSHA"), CommandContext(user="auditor"))
    ship = (await ships.load(ship_id)).state
    say(f"   Where was the ship on Mar 7 now? {_port(ship.location_on(_day(7)))}.")
    for move in ship.cargo_history("C-100"):
        value = f", worth {move.value_krw:,.0f} KRW" if move.value_krw is not None else ""
        say(f"   C-100 {move.action} in {_port(move.port)} on {move.occurred_at:%b %d}{value}")
    before = await ships.state_at(ship_id, at=believed_until)
    believed = _port(before.state.location_on(_day(7)))
    say(f"   A temporal query on recorded time (the stream as of version {before.version}, before the")
    say(f"   correction was recorded): back then we believed that on Mar 7 the ship was in {believed}.")

    say("5. A complete rebuild of the tracker: it forgets everything and replays every ship event.")
    rates.rates["USD"] = Decimal("1400")  # the service's answer today differs from the recorded one
    calls_before, sent_before = rates.calls, len(customs.notifications)
    replayed = await runner.rebuild()
    cargo = tracker.cargo_locations()["C-100"]
    sent = len(customs.notifications) - sent_before
    suppressed = tracker.notify_customs.suppressed
    say(f"   {replayed} events replayed. The customs gateway is silent during a replay:")
    say(f"   {sent} new notifications, {suppressed} suppressed.")
    asked = rates.calls - calls_before
    say(f"   Exchange-rate calls during the replay: {asked} — the recorded answer was reused,")
    rebuilt = tracker.ships[ship_id].cargo_history("C-100")[-1]
    say(f"   so C-100 is still worth {rebuilt.value_krw:,.0f} KRW although today's rate is 1,400.")
    say(f"   C-100 is now {'aboard' if cargo.aboard else 'unloaded'} in {_port(cargo.port)}.")
