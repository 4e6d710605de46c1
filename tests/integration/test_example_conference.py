"""The conference example on PostgreSQL: 100 concurrent reservations for 10 seats, read model, demo."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi.testclient import TestClient

from ilji import PostgresEventStore
from ilji.app import ProjectionRunner, StreamCheckpointStore
from ilji.examples.conference.demo import run_demo
from ilji.examples.conference.domain import (
    CancelReservation,
    CreateConference,
    ReserveSeats,
    SeatsReserved,
    SeatsUnavailable,
    events,
    repository,
)
from ilji.examples.conference.readmodel import SeatAvailability
from ilji.server import create_app
from ilji.settings import Settings
from ilji.store.snapshots import PostgresSnapshotStore


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[list[PostgresEventStore]]:
    """Four stores, four pools of 10 connections: reservations race on separate connections."""
    opened = [await PostgresEventStore.open(database_url, max_size=10, notify=False) for _ in range(4)]
    try:
        yield opened
    finally:
        for s in opened:
            await s.close()


@pytest.mark.parametrize("round_", range(3))
async def test_100_concurrent_reservations_for_10_seats_yield_exactly_10(
    stores: list[PostgresEventStore], round_: int
) -> None:
    # With snapshots on, every load also races with snapshot writes: the answer must not change.
    repos = [repository(s, PostgresSnapshotStore(s.database), max_retries=15) for s in stores]
    conference_id = uuid.uuid4().hex
    await repos[0].handle(conference_id, CreateConference("PyCon", 10))
    start = asyncio.Event()

    async def reserve(n: int) -> str:
        await start.wait()  # all tasks start together, so the race is real
        try:
            result = await repos[n % len(repos)].handle(conference_id, ReserveSeats(f"r{n}", 1))
        except SeatsUnavailable:
            return "refused"
        assert result.events == [SeatsReserved(f"r{n}", 1)]
        return "reserved"

    tasks = [asyncio.create_task(reserve(n)) for n in range(100)]
    start.set()
    outcomes = await asyncio.gather(*tasks)
    assert outcomes.count("reserved") == 10
    assert outcomes.count("refused") == 90
    stored = await stores[0].read_stream(repos[0].stream(conference_id), 1, 1000)
    reserved = [events.decode(e) for e in stored if e.type == "SeatsReserved"]
    assert len(reserved) == 10 and sum(e.quantity for e in reserved) == 10  # type: ignore[attr-defined]
    state = (await repos[0].load(conference_id, use_snapshots=False)).state
    assert (state.reserved, state.available) == (10, 0)


async def test_cancellation_frees_a_seat_for_someone_else(stores: list[PostgresEventStore]) -> None:
    conferences = repository(stores[0])
    conference_id = uuid.uuid4().hex
    await conferences.handle(conference_id, CreateConference("PyCon", 1))
    await conferences.handle(conference_id, ReserveSeats("a"))
    with pytest.raises(SeatsUnavailable):
        await conferences.handle(conference_id, ReserveSeats("b"))
    await conferences.handle(conference_id, CancelReservation("a"))
    await conferences.handle(conference_id, ReserveSeats("b"))
    types = [h.recorded.type for h in await conferences.history(conference_id)]
    assert types == ["ConferenceCreated", "SeatsReserved", "ReservationCancelled", "SeatsReserved"]


async def test_the_read_model_catches_up_with_a_stored_checkpoint(stores: list[PostgresEventStore]) -> None:
    store = stores[0]
    conferences = repository(store)
    conference_id = uuid.uuid4().hex
    await conferences.handle(conference_id, CreateConference("PyCon", 5))
    await conferences.handle(conference_id, ReserveSeats("a", 2))
    model = SeatAvailability()
    name = f"availability{uuid.uuid4().hex[:8]}"
    model.name = name  # type: ignore[misc]
    await ProjectionRunner(store, model, StreamCheckpointStore(store), category="conference").catch_up()
    assert model.conferences[conference_id].available == 3
    await conferences.handle(conference_id, CancelReservation("a"))
    await ProjectionRunner(store, model, StreamCheckpointStore(store), category="conference").catch_up()
    assert model.conferences[conference_id].available == 5


async def test_the_demo_runs_on_postgres(stores: list[PostgresEventStore]) -> None:
    lines: list[str] = []
    await run_demo(stores[0], lines.append)
    assert any("10 reserved, 20 refused" in line for line in lines)


def test_served_by_ilji_serve_refusals_and_failed_if_match_are_problems(database_url: str) -> None:
    # As `ilji serve --example conference` mounts the routes: the app's problem table answers
    # for them, the routes catch nothing themselves.
    settings = Settings(database_url=database_url, examples=("conference",))
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        base = f"/examples/conference/conferences/{uuid.uuid4().hex}"
        booking = {"reservation_id": "a", "quantity": 1}
        missing = client.post(f"{base}/reservations", json=booking, headers={"If-Match": "*"})
        assert missing.status_code == 412, missing.text
        assert client.put(base, json={"name": "PyCon", "seats": 1}).headers["etag"] == '"1"'
        reserved = client.post(f"{base}/reservations", json=booking, headers={"If-Match": '"1"'})
        assert reserved.status_code == 200, reserved.text
        stale = client.delete(f"{base}/reservations/a", headers={"If-Match": '"1"'})
        assert stale.status_code == 412, stale.text
        assert stale.headers["content-type"] == "application/problem+json"
        assert (stale.json()["expected"], stale.json()["actual"]) == (1, 2)
        malformed = client.delete(f"{base}/reservations/a", headers={"If-Match": "two"})
        assert malformed.status_code == 400, malformed.text
        assert malformed.json()["errors"][0]["field"] == "If-Match"
        full = client.post(f"{base}/reservations", json={"reservation_id": "b", "quantity": 1})
        assert full.status_code == 409, full.text
        assert full.headers["content-type"] == "application/problem+json"
        assert full.json()["type"] == "urn:ilji:problem:seats-unavailable"
