"""The ships example: the aggregate's rules in given/when/then form, corrections, replays, HTTP, demo."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
from fastapi import FastAPI

from ilji import MemoryEventStore
from ilji.app import MemoryCheckpointStore, ProjectionRunner
from ilji.examples.ships.demo import run_demo
from ilji.examples.ships.domain import (
    ArrivalCorrected,
    CargoLoaded,
    CargoMove,
    CargoUnloaded,
    ShipArrived,
    ShipDeparted,
    ShipRegistered,
    ShipRuleBroken,
    decider,
)
from ilji.examples.ships.http import router
from ilji.examples.ships.services import FakeExchangeRates, RecordingCustoms, ShippingService, ShipTracker
from ilji.server import problems
from ilji.testing import DeciderSpecification

spec = DeciderSpecification(decider)


def day(d: int) -> datetime:
    return datetime(2026, 3, d, tzinfo=UTC)


registered = ShipRegistered("Seoul")
in_busan = [registered, ShipArrived("KRPUS", day(1))]
sailing = [*in_busan, CargoLoaded("C1", Decimal(10), "USD", day(2)), ShipDeparted(day(3))]


def test_register_once() -> None:
    spec.given([]).when(lambda s: s.register("Seoul")).then([registered])
    spec.given([registered]).when(lambda s: s.register("Seoul")).then_nothing()
    spec.given([registered]).when(lambda s: s.register("Busan")).then_raises(ShipRuleBroken)


def test_arrive_and_depart() -> None:
    spec.given([registered]).when(lambda s: s.arrive("KRPUS", day(1))).then([ShipArrived("KRPUS", day(1))])
    spec.given(in_busan).when(lambda s: s.arrive("JPYOK", day(2))).then_raises(ShipRuleBroken, "depart first")
    spec.given(in_busan).when(lambda s: s.depart(day(2))).then([ShipDeparted(day(2))])
    spec.given(sailing).when(lambda s: s.depart(day(4))).then_raises(ShipRuleBroken, "at sea")
    spec.given([registered]).when(lambda s: s.arrive("XXXXX", day(1))).then_raises(ShipRuleBroken, "unknown")
    spec.given([]).when(lambda s: s.arrive("KRPUS", day(1))).then_raises(ShipRuleBroken, "no such ship")
    spec.given(sailing).when(lambda s: s.arrive("JPYOK", day(2))).then_raises(ShipRuleBroken, "order")


def test_load_and_unload_in_port_only() -> None:
    load = CargoLoaded("C1", Decimal(10), "USD", day(2))
    spec.given(in_busan).when(lambda s: s.load("C1", Decimal(10), "USD", day(2))).then([load])
    spec.given([*in_busan, load]).when(lambda s: s.load("C1", Decimal(1), "USD", day(2))).then_raises(
        ShipRuleBroken
    )
    spec.given(sailing).when(lambda s: s.load("C2", Decimal(1), "USD", day(4))).then_raises(ShipRuleBroken)
    spec.given([*in_busan, load]).when(lambda s: s.unload("C1", Decimal(2), day(3))).then(
        [CargoUnloaded("C1", Decimal(2), day(3))]
    )
    spec.given(in_busan).when(lambda s: s.unload("C1", Decimal(2), day(3))).then_raises(ShipRuleBroken)


def test_where_was_the_ship_on_a_date() -> None:
    ship = decider.fold([*sailing, ShipArrived("JPYOK", day(6))])
    assert ship.location_on(datetime(2026, 2, 28, tzinfo=UTC)) is None  # before tracking began
    assert [ship.location_on(day(d)) for d in (1, 2, 3, 5, 6, 9)] == [
        "KRPUS",
        "KRPUS",
        None,
        None,
        "JPYOK",
        "JPYOK",
    ]


def test_a_retroactive_correction_moves_the_cargo_history_with_it() -> None:
    history = [
        *sailing,
        ShipArrived("JPYOK", day(6)),
        CargoUnloaded("C1", Decimal(1300), day(7)),
        ShipDeparted(day(8)),
    ]
    spec.given(history).when(lambda s: s.correct_arrival(day(6), "CNSHA")).then(
        [ArrivalCorrected(day(6), "JPYOK", "CNSHA")]
    )
    spec.given(history).when(lambda s: s.correct_arrival(day(5), "CNSHA")).then_raises(ShipRuleBroken)
    fixed = decider.fold([*history, ArrivalCorrected(day(6), "JPYOK", "CNSHA")])
    assert fixed.location_on(day(7)) == "CNSHA"
    assert fixed.cargo_history("C1") == [
        CargoMove("C1", "loaded", "KRPUS", day(2)),
        CargoMove("C1", "unloaded", "CNSHA", day(7), Decimal(13000)),
    ]
    spec.given([*history, ArrivalCorrected(day(6), "JPYOK", "CNSHA")]).when(
        lambda s: s.correct_arrival(day(6), "CNSHA")
    ).then_nothing()


async def test_the_exchange_rate_is_asked_once_and_replays_reuse_the_answer() -> None:
    store = MemoryEventStore()
    rates, customs = FakeExchangeRates(), RecordingCustoms()
    service = ShippingService(store, rates)
    ships = service.ships
    await ships.handle("s1", lambda s: s.register("Seoul"))
    await ships.handle("s1", lambda s: s.arrive("KRPUS", day(1)))
    await ships.handle("s1", lambda s: s.load("C1", Decimal(10), "USD", day(2)))
    await ships.handle("s1", lambda s: s.depart(day(3)))
    tracker = ShipTracker(customs)
    runner = ProjectionRunner(store, tracker, MemoryCheckpointStore())
    await runner.catch_up()
    await ships.handle("s1", lambda s: s.arrive("JPYOK", day(6)))
    await runner.catch_up()
    assert customs.notifications == [("Seoul", "JPYOK", ["C1"])]
    await service.unload("s1", "C1", day(7))
    assert rates.calls == 1
    await runner.catch_up()
    assert tracker.cargo_locations()["C1"].port == "JPYOK"
    rates.rates["USD"] = Decimal(1)
    await runner.rebuild()
    assert rates.calls == 1
    assert customs.notifications == [("Seoul", "JPYOK", ["C1"])]
    assert tracker.notify_customs.suppressed == 1
    assert tracker.ships["s1"].cargo_history("C1")[-1].value_krw == Decimal(13500)


async def test_http_routes() -> None:
    app = FastAPI()
    problems.install(app)  # as `ilji serve --example` mounts the routes: errors as problems
    app.include_router(router(MemoryEventStore()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        base = "/examples/ships/ships/s1"
        assert (await client.get(base)).status_code == 404
        assert (await client.put(base, json={"name": "Seoul"})).status_code == 200
        arrival = {"port": "JPYOK", "when": day(1).isoformat()}
        assert (await client.post(f"{base}/arrivals", json=arrival)).status_code == 200
        assert (await client.post(f"{base}/arrivals", json=arrival)).status_code == 409
        cargo = {"cargo": "C1", "when": day(2).isoformat(), "value": "5", "currency": "EUR"}
        assert (await client.post(f"{base}/loads", json=cargo)).status_code == 200
        assert (await client.post(f"{base}/unloads", json=cargo)).json() == {"version": 4}
        assert (await client.post(f"{base}/departures", json={"when": day(3).isoformat()})).status_code == 200
        fix = {"arrival_occurred_at": day(1).isoformat(), "port": "KRPUS"}
        assert (await client.post(f"{base}/corrections", json=fix)).status_code == 200
        now = (await client.get(base)).json()
        assert (now["port"], now["version"]) == (None, 6)
        assert (await client.get(base, params={"on": day(2).isoformat()})).json()["port_name"] == "Busan"
        moves = (await client.get(f"{base}/cargo/C1")).json()
        assert [(m["action"], m["port"], m["value_krw"]) for m in moves] == [
            ("loaded", "KRPUS", None),
            ("unloaded", "KRPUS", "7250"),
        ]


async def test_the_demo_explains_each_step() -> None:
    lines: list[str] = []
    await run_demo(MemoryEventStore(), lines.append)
    text = "\n".join(lines)
    assert "Where was the ship on Mar 7 now? Shanghai" in text
    assert "we believed that on Mar 7 the ship was in Yokohama" in text
    assert "0 new notifications, 1 suppressed" in text
    assert "Exchange-rate calls during the replay: 0" in text
