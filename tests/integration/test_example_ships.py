"""The ships example on PostgreSQL: the walkthrough, bitemporal questions and snapshots of an aggregate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ilji import PostgresEventStore
from ilji.app import ProjectionRunner, StreamCheckpointStore
from ilji.examples.ships.demo import run_demo
from ilji.examples.ships.domain import repository
from ilji.examples.ships.services import FakeExchangeRates, RecordingCustoms, ShippingService, ShipTracker
from ilji.store.snapshots import PostgresSnapshotStore


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[PostgresEventStore]:
    s = await PostgresEventStore.open(database_url, max_size=5, notify=False)
    try:
        yield s
    finally:
        await s.close()


def day(d: int) -> datetime:
    return datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=d - 1)


async def test_the_demo_runs_on_postgres(pg: PostgresEventStore) -> None:
    lines: list[str] = []
    await run_demo(pg, lines.append)
    text = "\n".join(lines)
    assert "Where was the ship on Mar 7 now? Shanghai" in text
    assert "we believed that on Mar 7 the ship was in Yokohama" in text
    assert "0 new notifications, 1 suppressed" in text


async def test_a_long_voyage_loads_from_a_snapshot_and_corrections_still_apply(
    pg: PostgresEventStore,
) -> None:
    snapshots = PostgresSnapshotStore(pg.database)
    ships = repository(pg, snapshots)
    ship_id = uuid.uuid4().hex
    await ships.handle(ship_id, lambda s: s.register("Long Haul"))
    ports = ["KRPUS", "JPYOK"]
    for leg in range(60):
        when = day(1) + timedelta(hours=2 * leg)
        await ships.handle(ship_id, lambda s, p=ports[leg % 2], w=when: s.arrive(p, w))
        await ships.handle(ship_id, lambda s, w=when + timedelta(hours=1): s.depart(w))
    loaded = await ships.load(ship_id)
    assert (loaded.version, loaded.snapshot_version) == (121, 100)
    await ships.handle(ship_id, lambda s: s.correct_arrival(day(1), "CNSHA"))
    fixed = await ships.load(ship_id)
    assert fixed.state.location_on(day(1)) == "CNSHA"
    assert fixed.state == (await ships.load(ship_id, use_snapshots=False)).state


async def test_the_tracker_keeps_its_position_in_the_store(pg: PostgresEventStore) -> None:
    rates, customs = FakeExchangeRates(), RecordingCustoms()
    service = ShippingService(pg, rates)
    ship_id = uuid.uuid4().hex
    await service.ships.handle(ship_id, lambda s: s.register("Seoul"))
    await service.ships.handle(ship_id, lambda s: s.arrive("KRPUS", day(1)))
    await service.ships.handle(ship_id, lambda s: s.load("C1", Decimal(10), "EUR", day(1)))
    await service.ships.handle(ship_id, lambda s: s.depart(day(2)))
    await service.ships.handle(ship_id, lambda s: s.arrive("NLRTM", day(20)))
    tracker = ShipTracker(customs)
    tracker.name = f"tracker{uuid.uuid4().hex[:8]}"  # type: ignore[misc]
    runner = ProjectionRunner(pg, tracker, StreamCheckpointStore(pg), category="ship")
    await runner.catch_up()
    assert ("Seoul", "NLRTM", ["C1"]) in customs.notifications
    await service.unload(ship_id, "C1", day(21))
    again = ProjectionRunner(pg, tracker, StreamCheckpointStore(pg), category="ship")
    assert await again.catch_up() == 1
    assert tracker.cargo_locations()["C1"].port == "NLRTM"
    assert tracker.ships[ship_id].cargo_history("C1")[-1].value_krw == Decimal(14500)
