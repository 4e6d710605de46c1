"""Domain views: JSON diffs, the registry by category, and a stream folded version by version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ilji import MemoryEventStore, NewEvent, ValidationError
from ilji.app import RegistryError
from ilji.app.time_travel import DomainViews, StateChange, diff, state_history
from ilji.examples.conference.domain import CancelReservation, CreateConference, ReserveSeats, repository
from ilji.examples.conference.domain import views as conference_views
from ilji.examples.orders.domain import views as order_views
from ilji.examples.ships.domain import repository as ship_repository
from ilji.examples.ships.domain import views as ship_views

(conference,) = conference_views


def test_diff_names_each_added_removed_and_changed_member() -> None:
    before = {"a": 1, "b": {"x": [1, 2]}, "gone": True, "same": "s"}
    after = {"a": 2, "b": {"x": [1, 3, 4]}, "new": None, "same": "s"}
    assert diff(before, after) == [
        StateChange(("a",), "changed", 1, 2),
        StateChange(("b", "x", 1), "changed", 2, 3),
        StateChange(("b", "x", 2), "added", after=4),
        StateChange(("gone",), "removed", before=True),
        StateChange(("new",), "added", after=None),
    ]
    assert diff({"n": 1}, {"n": 1.0}) == [StateChange(("n",), "changed", 1, 1.0)]  # not the same JSON
    assert diff([1, 2], [1]) == [StateChange((1,), "removed", before=2)]
    assert diff({"k": 1}, {"k": 1}) == []


def test_views_are_found_by_the_category_of_an_entity_stream() -> None:
    views = DomainViews([*conference_views, *order_views])
    assert views.for_stream("conference-pycon") is conference
    assert views.for_stream("conference") is None  # the category itself is no entity stream
    assert views.for_stream("conference-") is None
    assert views.for_stream("conferences-x") is None
    assert [v.category for v in views] == ["conference", "customer", "order"]
    views.register(conference)  # the same one again is fine
    with pytest.raises(RegistryError):
        views.register(type(conference)(conference.aggregate))


async def test_state_history_shows_each_version_and_what_it_changed() -> None:
    store = MemoryEventStore()
    conferences = repository(store)
    await conferences.handle("pycon", CreateConference("PyCon", 3))
    await conferences.handle("pycon", ReserveSeats("r1", 2))
    await conferences.handle("pycon", CancelReservation("r1"))
    # A hand-written event of an unknown type counts for the version only.
    await store.append("conference-pycon", [NewEvent("Renamed", {"name": "x"})])

    history = await state_history(store, conference, "conference-pycon")
    assert history.version == 4
    assert history.before == {
        "name": None,
        "seats": 0,
        "reserved": 0,
        "available": 0,
        "reservations": {},
        "cancelled": [],
    }
    created, reserved, cancelled, unknown = history.steps
    assert created.state["available"] == 3 and created.event.type == "ConferenceCreated"
    assert reserved.state["reservations"] == {"r1": 2}
    assert {c.path for c in reserved.changes} == {("reserved",), ("available",), ("reservations", "r1")}
    assert StateChange(("reservations", "r1"), "removed", before=2) in cancelled.changes
    assert StateChange(("cancelled", 0), "added", after="r1") in cancelled.changes
    assert unknown.changes == [] and unknown.error is None and unknown.state == cancelled.state

    page = await state_history(store, conference, "conference-pycon", from_version=2, limit=1)
    assert [s.event.version for s in page.steps] == [2]
    assert page.before == created.state and page.steps[0].changes == reserved.changes


async def test_a_page_of_a_truncated_stream_starts_at_the_first_visible_version_asked_for() -> None:
    store = MemoryEventStore()
    conferences = repository(store)
    await conferences.handle("big", CreateConference("Big", 100))
    for i in range(9):
        await conferences.handle("big", ReserveSeats(f"r{i}", 1))  # versions 2..10
    await store.truncate_stream("conference-big", 4)  # versions 1..3 hidden
    page = await state_history(store, conference, "conference-big", from_version=2, limit=3)
    assert [s.event.version for s in page.steps] == [4, 5, 6]
    page = await state_history(store, conference, "conference-big", from_version=5, limit=3)
    assert [s.event.version for s in page.steps] == [5, 6, 7]
    assert page.before["reservations"] == {"r2": 1}  # the state folded from version 4 only


async def test_an_event_that_does_not_decode_is_shown_with_its_error() -> None:
    store = MemoryEventStore()
    await store.append(
        "conference-bad",
        [NewEvent("ConferenceCreated", {"name": "A", "seats": 2}), NewEvent("SeatsReserved", {"x": 1})],
    )
    await store.append(
        "conference-bad",
        [NewEvent("SeatsReserved", {"reservation_id": "r", "quantity": 1}, {"schema_version": 2})],
    )
    steps = (await state_history(store, conference, "conference-bad")).steps
    assert steps[1].error is not None and steps[1].changes == []
    assert steps[2].error is None and steps[2].state["available"] == 1


async def test_aggregate_style_states_show_as_json() -> None:
    store = MemoryEventStore()
    ships = ship_repository(store)
    when = datetime(2024, 5, 1, tzinfo=UTC)
    await ships.handle("s1", lambda s: s.register("Hana"))
    await ships.handle("s1", lambda s: s.arrive("KRPUS", when))
    (view,) = ship_views
    steps = (await state_history(store, view, "ship-s1")).steps
    assert steps[-1].state["port"] == "KRPUS"
    assert steps[-1].state["timeline"][0]["occurred_at"] == when.isoformat()
    assert view.state_type == "Ship" and "ShipArrived" in view.event_types()


@pytest.mark.parametrize(
    ("stream", "options"),
    [
        ("order-1", {}),
        ("conference-x", {"from_version": 0}),
        ("conference-x", {"limit": 0}),
        ("conference-x", {"limit": 201}),
        ("conference x", {}),
    ],
)
async def test_bad_requests_are_validation_errors(stream: str, options: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        await state_history(MemoryEventStore(), conference, stream, **options)
