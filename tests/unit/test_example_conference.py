"""The conference example: its decider in given/when/then form, its read model, HTTP routes and demo."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from ilji import MemoryEventStore, NewEvent
from ilji.app import MemoryCheckpointStore, ProjectionRunner
from ilji.examples.conference.demo import run_demo
from ilji.examples.conference.domain import (
    CancelReservation,
    ConferenceAlreadyExists,
    ConferenceCreated,
    ConferenceNotFound,
    CreateConference,
    InvalidReservation,
    ReservationCancelled,
    ReservationNotFound,
    ReserveSeats,
    SeatsReserved,
    SeatsUnavailable,
    decider,
    events,
    repository,
)
from ilji.examples.conference.http import router
from ilji.examples.conference.readmodel import SeatAvailability
from ilji.server import problems
from ilji.testing import DeciderSpecification

spec = DeciderSpecification(decider)
created = ConferenceCreated("PyCon", 3)


def test_create_a_conference() -> None:
    spec.given([]).when(CreateConference("PyCon", 3)).then([created])
    spec.given([created]).when(CreateConference("PyCon", 3)).then_nothing()
    spec.given([created]).when(CreateConference("Other", 3)).then_raises(ConferenceAlreadyExists)
    spec.given([]).when(CreateConference("PyCon", 0)).then_raises(InvalidReservation)


def test_reserve_seats_while_there_are_enough() -> None:
    spec.given([created]).when(ReserveSeats("r1", 2)).then([SeatsReserved("r1", 2)])
    spec.given([created, SeatsReserved("r1", 2)]).when(ReserveSeats("r2", 1)).then([SeatsReserved("r2", 1)])


def test_no_overbooking() -> None:
    error = (
        spec.given([created, SeatsReserved("r1", 2)])
        .when(ReserveSeats("r2", 2))
        .then_raises(SeatsUnavailable)
    )
    assert error.details == {"requested": 2, "available": 1}


def test_a_repeated_reservation_is_harmless_and_a_conflicting_one_refused() -> None:
    spec.given([created, SeatsReserved("r1", 2)]).when(ReserveSeats("r1", 2)).then_nothing()
    spec.given([created, SeatsReserved("r1", 2)]).when(ReserveSeats("r1", 1)).then_raises(InvalidReservation)
    spec.given([created]).when(ReserveSeats("r1", 0)).then_raises(InvalidReservation)


def test_reservations_need_a_conference() -> None:
    spec.given([]).when(ReserveSeats("r1", 1)).then_raises(ConferenceNotFound)
    spec.given([]).when(CancelReservation("r1")).then_raises(ConferenceNotFound)


def test_cancellation_is_a_compensating_event_that_frees_the_seats() -> None:
    full = [created, SeatsReserved("r1", 3)]
    spec.given(full).when(CancelReservation("r1")).then([ReservationCancelled("r1", 3)])
    after = [*full, ReservationCancelled("r1", 3)]
    spec.given(after).then_state(lambda s: s.available == 3 and s.cancelled == {"r1"})
    spec.given(after).when(CancelReservation("r1")).then_nothing()
    spec.given(after).when(ReserveSeats("r1", 1)).then_raises(InvalidReservation, match="cancelled")
    spec.given(after).when(ReserveSeats("r2", 3)).then([SeatsReserved("r2", 3)])
    spec.given([created]).when(CancelReservation("nope")).then_raises(ReservationNotFound)


async def test_version_1_reservations_are_upcast_on_read() -> None:
    store = MemoryEventStore()
    conferences = repository(store)
    await conferences.handle("c1", CreateConference("PyCon", 5))
    # An event as the first version of the code wrote it: "seats", not "quantity".
    await store.append("conference-c1", [NewEvent("SeatsReserved", {"reservation_id": "old", "seats": 2})])
    loaded = await conferences.load("c1")
    assert loaded.state.reservations == {"old": 2}
    [*_, stored] = await store.read_stream("conference-c1")
    assert stored.data == {"reservation_id": "old", "seats": 2}
    assert events.decode(stored) == SeatsReserved("old", 2)


async def test_the_availability_read_model_follows_the_streams() -> None:
    store = MemoryEventStore()
    conferences = repository(store)
    await conferences.handle("c1", CreateConference("PyCon", 5))
    await conferences.handle("c2", CreateConference("RustConf", 2))
    await conferences.handle("c1", ReserveSeats("r1", 2))
    await conferences.handle("c1", ReserveSeats("r2", 1))
    await conferences.handle("c1", CancelReservation("r1"))
    model = SeatAvailability()
    runner = ProjectionRunner(store, model, MemoryCheckpointStore(), types=model.types)
    await runner.catch_up()
    assert {k: v.available for k, v in model.conferences.items()} == {"c1": 4, "c2": 2}
    # A redelivered event changes nothing.
    [event] = await store.read_stream("conference-c1", 2, 1)
    await model.handle(event)
    assert model.conferences["c1"].available == 4
    await runner.rebuild()
    assert {k: v.available for k, v in model.conferences.items()} == {"c1": 4, "c2": 2}


async def test_http_routes() -> None:
    app = FastAPI()
    problems.install(app)  # as `ilji serve --example` mounts the routes: errors as problems
    app.include_router(router(MemoryEventStore()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        base = "/examples/conference/conferences/c1"
        assert (await client.get(base)).status_code == 404
        created = await client.put(base, json={"name": "PyCon", "seats": 2})
        assert created.status_code == 200
        assert created.headers["etag"] == '"1"'
        assert (
            await client.post(f"{base}/reservations", json={"reservation_id": "a", "quantity": 2})
        ).json() == {
            "version": 2,
            "events": ["SeatsReserved"],
        }
        refused = await client.post(f"{base}/reservations", json={"reservation_id": "b"})
        assert refused.status_code == 409
        assert refused.json()["type"] == "urn:ilji:problem:seats-unavailable"
        stale = await client.delete(f"{base}/reservations/a", headers={"If-Match": '"1"'})
        assert stale.status_code == 412
        assert (
            await client.delete(f"{base}/reservations/a", headers={"If-Match": "nope"})
        ).status_code == 400
        assert (await client.delete(f"{base}/reservations/a", headers={"If-Match": '"2"'})).status_code == 200
        shown = (await client.get(base)).json()
        assert (shown["available"], shown["version"]) == (2, 3)
        assert (await client.get(base, params={"version": 2})).json()["available"] == 0
        history = (await client.get(f"{base}/history")).json()
        assert [h["available"] for h in history] == [2, 0, 2]


def _served(store: MemoryEventStore) -> httpx.AsyncClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(router(store))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_if_match_is_read_as_ilji_reads_it_stale_412_malformed_400_star_must_exist() -> None:
    async with _served(MemoryEventStore()) as client:
        base = "/examples/conference/conferences/c1"
        booking = {"reservation_id": "a", "quantity": 1}
        missing = await client.post(f"{base}/reservations", json=booking, headers={"If-Match": "*"})
        assert missing.status_code == 412, missing.text  # RFC 9110: `*` needs the conference to exist
        assert missing.json()["actual"] == 0
        await client.put(base, json={"name": "PyCon", "seats": 5})
        star = await client.post(f"{base}/reservations", json=booking, headers={"If-Match": "*"})
        assert (star.status_code, star.headers["etag"]) == (200, '"2"')
        stale = await client.post(
            f"{base}/reservations", json={"reservation_id": "b"}, headers={"If-Match": 'W/"1"'}
        )
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        assert stale.json()["type"] == "urn:ilji:problem:wrong-expected-version"
        assert (stale.json()["expected"], stale.json()["actual"]) == (1, 2)
        for malformed in ("nope", '"-1"', '"99999999999999999999"'):
            bad = await client.delete(f"{base}/reservations/a", headers={"If-Match": malformed})
            assert bad.status_code == 400, malformed
            assert bad.json()["errors"][0]["field"] == "If-Match"
        assert (await client.get(base)).json()["version"] == 2, "nothing was stored"


async def test_a_refused_reservation_is_a_409_problem_named_by_the_rule() -> None:
    async with _served(MemoryEventStore()) as client:
        base = "/examples/conference/conferences/c1"
        await client.put(base, json={"name": "PyCon", "seats": 1})
        refused = await client.post(f"{base}/reservations", json={"reservation_id": "a", "quantity": 2})
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert body["type"] == "urn:ilji:problem:seats-unavailable"
        assert (body["title"], body["status"]) == ("Conflict", 409)
        assert "seat" in body["detail"]


async def test_the_demo_explains_each_step() -> None:
    lines: list[str] = []
    await run_demo(MemoryEventStore(), lines.append)
    text = "\n".join(lines)
    assert "10 reserved, 20 refused" in text
    assert "compensating event" in text
    assert "10 seats, 9 reserved, 1 available" in text
