"""The relay against a real `nats-server -js` and PostgreSQL: what it publishes and what it never does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ilji import NewEvent, PostgresEventStore, RecordedEvent
from ilji.projections import list_parked, replay_parked, wait_for_position
from ilji.projections import status as projection_status
from ilji.relay import IntegrationEvents, Relay, RelayConfig
from tests.nats_fixtures import NatsServer, add_stream, start_nats, stored_messages

pytestmark = pytest.mark.slow


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def category() -> str:
    """A category of this test's own, so other tests' events never match its mappings."""
    return f"c{uuid.uuid4().hex[:10]}"


def config(database_url: str, nats_url: str, **overrides: Any) -> RelayConfig:
    values: dict[str, Any] = {
        "database_url": database_url,
        "nats_url": nats_url,
        "jetstream_stream": "TESTS",
        "create_stream": True,
        "lease_ttl": 1.0,
        "poll_interval": 0.05,
        "port": 0,
        "status_interval": 0.1,
        **overrides,
    }
    return RelayConfig(**values)


@contextlib.asynccontextmanager
async def running(relay: Relay) -> AsyncIterator[Relay]:
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 15)


def seats_mapping(cat: str, name: str) -> IntegrationEvents:
    integration = IntegrationEvents(name, subject_prefix="pub", categories=[cat])

    @integration.map("SeatsReserved", to="SeatsReserved", version=1, personal=["attendee.email"])
    def seats_reserved(event: RecordedEvent) -> dict[str, Any] | None:
        if event.data.get("internal_test"):
            return None  # the function may decide to publish nothing
        return {
            "conference": event.stream,
            "seats": event.data["quantity"],
            "attendee": dict(event.data.get("attendee", {})),
        }

    return integration


async def test_publishes_mapped_events_with_ids_subjects_and_headers(
    store: PostgresEventStore, database_url: str, nats_server: NatsServer
) -> None:
    cat = category()
    stream = f"{cat}-1"
    result = await store.append(
        stream,
        [
            NewEvent(
                "SeatsReserved",
                {"quantity": 2},
                {"correlation_id": "corr-1", "causation_id": "cmd-1"},
            ),
            NewEvent("SeatsReserved", {"quantity": 1, "internal_test": True}),
            NewEvent("SeatsReserved", {"quantity": 3}),
        ],
    )
    relay = Relay(seats_mapping(cat, "relay_headers"), config(database_url, nats_server.url))
    async with running(relay):
        await wait_for_position(store, "relay_headers", result.last_position, timeout=20)
    events = await store.read_stream(stream)
    messages = await stored_messages(nats_server.url, "TESTS")
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [str(events[0].id), str(events[2].id)]
    first = messages[0]
    assert first.subject == f"pub.{cat}.SeatsReserved.v1"
    assert json.loads(first.data) == {"conference": stream, "seats": 2, "attendee": {}}
    assert first.headers["Ilji-Event"] == "SeatsReserved.v1"
    assert first.headers["Ilji-Stream"] == stream
    assert first.headers["Ilji-Stream-Version"] == "1"
    assert first.headers["Ilji-Position"] == str(events[0].position)
    assert first.headers["Ilji-Correlation-Id"] == "corr-1"
    assert first.headers["Ilji-Causation-Id"] == "cmd-1"
    assert "Ilji-Correlation-Id" not in messages[1].headers
    assert relay.metrics.published._value.get() == 2
    assert relay.metrics.skipped._value.get() == 1


async def test_personal_fields_never_reach_the_broker_in_clear(
    store: PostgresEventStore, database_url: str, nats_server: NatsServer
) -> None:
    cat = category()
    email, phone, secret_name = "alice@example.com", "+82-10-5555-0101", "Alice Kim"
    # A crypto-shredding envelope, as `ilji.app.personal` stores an encrypted field.
    envelope = {"$personal": {"v": 1, "subject": "alice", "key_id": "k1", "nonce": "n", "ciphertext": "Zm9v"}}
    integration = IntegrationEvents("relay_personal", subject_prefix="pub", categories=[cat])

    # A careless mapping: it copies whole objects, personal fields included.
    @integration.map("CustomerRegistered", to="CustomerRegistered", personal=["email", "contact.phone"])
    def customer_registered(event: RecordedEvent) -> dict[str, Any]:
        return dict(event.data)

    result = await store.append(
        f"{cat}-alice",
        [
            NewEvent(
                "CustomerRegistered",
                {
                    "customer_id": "cust-1",
                    "email": email,
                    "contact": {"phone": phone, "city": "Seoul"},
                    "name": envelope,
                    "aliases": [envelope, "ok"],
                },
                {"note": secret_name},  # metadata is never published either
            )
        ],
    )
    async with running(Relay(integration, config(database_url, nats_server.url))):
        await wait_for_position(store, "relay_personal", result.last_position, timeout=20)
    (message,) = await stored_messages(nats_server.url, "TESTS")
    raw = message.data + json.dumps(message.headers).encode()
    for clear in (email, phone, secret_name, "$personal", "ciphertext"):
        assert clear.encode() not in raw, f"{clear!r} reached the broker"
    assert json.loads(message.data) == {
        "customer_id": "cust-1",
        "contact": {"city": "Seoul"},
        "aliases": ["ok"],
    }


async def test_an_unmapped_event_is_never_published(
    store: PostgresEventStore, database_url: str, nats_server: NatsServer
) -> None:
    cat = category()
    integration = seats_mapping(cat, "relay_unmapped")
    await store.append(f"{cat}-1", [NewEvent("SeatsHeld", {"quantity": 9}), NewEvent("Audit", {"x": 1})])
    last = await store.append(f"{cat}-2", [NewEvent("SeatsReserved", {"quantity": 1})])
    # Same type, another category: not this relay's.
    await store.append(f"{category()}-3", [NewEvent("SeatsReserved", {"quantity": 5})])
    relay = Relay(integration, config(database_url, nats_server.url))
    async with running(relay):
        await wait_for_position(store, "relay_unmapped", last.last_position, timeout=20)
    messages = await stored_messages(nats_server.url, "TESTS")
    assert [m.headers["Ilji-Stream"] for m in messages] == [f"{cat}-2"]
    assert {m.subject for m in messages} == {f"pub.{cat}.SeatsReserved.v1"}
    # Unmapped types are not even read: the relay's query asks for mapped types only.
    assert relay.metrics.skipped._value.get() == 0


async def test_a_refused_message_is_parked_then_replayed(
    store: PostgresEventStore, database_url: str, nats_server: NatsServer
) -> None:
    cat = category()
    await add_stream(nats_server.url, "SMALL", ["pub.>"], max_msg_size=1024)
    integration = seats_mapping(cat, "relay_parks")
    big = await store.append(
        f"{cat}-big", [NewEvent("SeatsReserved", {"quantity": 1, "attendee": {"x": "y" * 2000}})]
    )
    after = await store.append(f"{cat}-next", [NewEvent("SeatsReserved", {"quantity": 2})])
    settings = config(database_url, nats_server.url, jetstream_stream="SMALL", create_stream=False)
    relay = Relay(integration, settings)
    async with running(relay):
        await wait_for_position(store, "relay_parks", after.last_position, timeout=30)
        (parked,) = await list_parked(store, "relay_parks")
        assert parked.event_id == (await store.read_stream(f"{cat}-big"))[0].id
        assert "JetStream refused the message" in parked.error
        messages = await stored_messages(nats_server.url, "SMALL")
        assert [m.headers["Ilji-Stream"] for m in messages] == [f"{cat}-next"]
        # The operator raises the stream's limit, then replays.
        await add_stream(nats_server.url, "SMALL", ["pub.>"], max_msg_size=8192)
        assert await replay_parked(store, "relay_parks") == 1
        for _ in range(200):
            messages = await stored_messages(nats_server.url, "SMALL")
            if len(messages) == 2:
                break
            await asyncio.sleep(0.05)
    assert [m.headers["Ilji-Position"] for m in messages] == [
        str(after.last_position),
        str(big.last_position),
    ]
    (done,) = await list_parked(store, "relay_parks", include_replayed=True)
    assert done.replayed_at is not None


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_broker_down_waits_shows_lag_and_catches_up(
    store: PostgresEventStore, database_url: str, nats_server: NatsServer
) -> None:
    cat = category()
    await add_stream(nats_server.url, "TESTS", ["pub.>"])
    nats_server.stop()  # the broker is down (its stored stream stays)
    relay = Relay(
        seats_mapping(cat, "relay_outage"), config(database_url, nats_server.url, create_stream=False)
    )
    async with running(relay):
        last = await store.append(f"{cat}-1", [NewEvent("SeatsReserved", {"quantity": n}) for n in (1, 2, 3)])
        for _ in range(300):
            if relay.metrics.lag_events._value.get() == 3 and relay.port:
                break
            await asyncio.sleep(0.05)
        assert relay.port is not None
        code, body = await asyncio.to_thread(get, relay.port, "/readyz")
        assert code == 503
        ready = json.loads(body)
        assert ready["broker_connected"] is False
        assert ready["lag_events"] == 3
        (st,) = await projection_status(store, "relay_outage")
        assert st.events_behind == 3
        assert st.checkpoint < last.first_position
        code, text = await asyncio.to_thread(get, relay.port, "/metrics")
        assert 'ilji_relay_lag_events{relay="relay_outage"} 3.0' in text
        assert 'ilji_relay_broker_connected{relay="relay_outage"} 0.0' in text
        assert (await asyncio.to_thread(get, relay.port, "/healthz"))[0] == 200

        nats_server.start()  # back: the relay reconnects (backoff at most 5 s) and catches up
        await wait_for_position(store, "relay_outage", last.last_position, timeout=30)
        for _ in range(100):
            if (await asyncio.to_thread(get, relay.port, "/readyz"))[0] == 200:
                break
            await asyncio.sleep(0.05)
        assert (await asyncio.to_thread(get, relay.port, "/readyz"))[0] == 200
    messages = await stored_messages(nats_server.url, "TESTS")
    assert [json.loads(m.data)["seats"] for m in messages] == [1, 2, 3]
    assert relay.metrics.unavailable._value.get() >= 1


async def test_the_conference_publishes_a_stable_seats_reserved_v1(
    store: PostgresEventStore, database_url: str, nats_server: NatsServer
) -> None:
    from ilji.examples.conference.integration import integration

    conference = f"conference-{uuid.uuid4().hex[:8]}"
    # Schema 1 (`seats`) written by older code, schema 2 (`quantity`) by today's.
    last = await store.append(
        conference,
        [
            NewEvent("ConferenceCreated", {"name": "PyCon KR", "seats": 10}, {"schema_version": 1}),
            NewEvent("SeatsReserved", {"reservation_id": "r1", "seats": 2}, {"schema_version": 1}),
            NewEvent("SeatsReserved", {"reservation_id": "r2", "quantity": 3}, {"schema_version": 2}),
            NewEvent("ReservationCancelled", {"reservation_id": "r1", "quantity": 2}),
        ],
    )
    async with running(Relay(integration, config(database_url, nats_server.url))):
        await wait_for_position(store, "conference_relay", last.last_position, timeout=20)
    messages = await stored_messages(nats_server.url, "TESTS")
    cid = conference.split("-", 1)[1]
    assert [(m.subject, json.loads(m.data)) for m in messages] == [
        ("ilji.conference.SeatsReserved.v1", {"conference_id": cid, "reservation_id": "r1", "seats": 2}),
        ("ilji.conference.SeatsReserved.v1", {"conference_id": cid, "reservation_id": "r2", "seats": 3}),
        (
            "ilji.conference.ReservationCancelled.v1",
            {"conference_id": cid, "reservation_id": "r1", "seats": 2},
        ),
    ]


async def test_a_subject_no_stream_takes_is_parked_not_lost(
    store: PostgresEventStore, database_url: str, nats_server: NatsServer
) -> None:
    cat = category()
    last = await store.append(f"{cat}-1", [NewEvent("SeatsReserved", {"quantity": 1})])
    settings = config(database_url, nats_server.url, jetstream_stream="NOWHERE", create_stream=False)
    async with running(Relay(seats_mapping(cat, "relay_nowhere"), settings)):
        await wait_for_position(store, "relay_nowhere", last.last_position, timeout=30)
    (parked,) = await list_parked(store, "relay_nowhere")
    assert parked.position == last.last_position
    assert "no JetStream stream takes this subject" in parked.error
