"""Integration-event mappings and the relay's error translation, without a broker or a database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
import pytest

from ilji import RecordedEvent
from ilji.projections.runner import is_infrastructure_error
from ilji.relay import BrokerUnavailable, IntegrationEvents, MappingError, PublishRejected
from ilji.relay.broker import broker_error


def event(type_: str, data: dict[str, Any], stream: str = "conference-7", **metadata: Any) -> RecordedEvent:
    return RecordedEvent(uuid.uuid4(), stream, 3, 41, type_, data, metadata, datetime(2026, 1, 2, tzinfo=UTC))


def test_a_mapped_event_becomes_its_public_event() -> None:
    integration = IntegrationEvents("relay", subject_prefix="acme.events")

    @integration.map("SeatsReserved", to="SeatsReserved", version=1)
    def reserved(e: RecordedEvent) -> dict[str, Any]:
        return {"conference": e.stream, "seats": e.data["quantity"]}

    source = event("SeatsReserved", {"quantity": 2}, correlation_id="c", causation_id="k")
    message = integration.to_message(source)
    assert message is not None
    assert message.subject == "acme.events.conference.SeatsReserved.v1"
    assert json.loads(message.payload) == {"conference": "conference-7", "seats": 2}
    assert message.headers == {
        "Nats-Msg-Id": str(source.id),
        "Ilji-Event": "SeatsReserved.v1",
        "Ilji-Stream": "conference-7",
        "Ilji-Stream-Version": "3",
        "Ilji-Position": "41",
        "Ilji-Recorded-At": "2026-01-02T00:00:00+00:00",
        "Ilji-Causation-Id": "k",
        "Ilji-Correlation-Id": "c",
    }
    assert integration.to_message(event("SeatsHeld", {})) is None
    assert integration.source_types == ["SeatsReserved"]


def test_personal_paths_and_encrypted_envelopes_are_removed() -> None:
    integration = IntegrationEvents()
    envelope = {"$personal": {"v": 1, "ciphertext": "x"}}

    @integration.map("Registered", to="Registered", personal=["email", "who.phone", "absent.path"])
    def registered(e: RecordedEvent) -> dict[str, Any]:
        return dict(e.data)

    data = {
        "id": 1,
        "email": "a@b",
        "who": {"phone": "1", "city": "Busan"},
        "name": envelope,
        "l": [envelope, 2],
    }
    message = integration.to_message(event("Registered", data))
    assert message is not None
    assert json.loads(message.payload) == {"id": 1, "who": {"city": "Busan"}, "l": [2]}
    assert data["email"] == "a@b"  # the event itself is untouched


def test_the_category_mapping_wins_and_categories_limit_the_relay() -> None:
    integration = IntegrationEvents(categories=["conference", "order"])

    @integration.map("Created", to="ConferenceCreated", category="conference")
    def conference(e: RecordedEvent) -> dict[str, Any]:
        return {}

    @integration.map("Created", to="SomethingCreated")
    def anything(e: RecordedEvent) -> dict[str, Any]:
        return {}

    def subject(stream: str) -> str | None:
        message = integration.to_message(event("Created", {}, stream=stream))
        return message.subject if message else None

    assert subject("conference-1") == "ilji.conference.ConferenceCreated.v1"
    assert subject("order-1") == "ilji.order.SomethingCreated.v1"
    assert subject("ship-1") is None


def test_bad_mapping_results_are_errors_that_park() -> None:
    integration = IntegrationEvents()

    @integration.map("A", to="A")
    def not_a_dict(e: RecordedEvent) -> Any:
        return [1]

    @integration.map("B", to="B")
    def fails(e: RecordedEvent) -> dict[str, Any]:
        raise KeyError("quantity")

    @integration.map("C", to="C")
    def not_json(e: RecordedEvent) -> dict[str, Any]:
        return {"when": object()}

    @integration.map("D", to="D")
    def fine(e: RecordedEvent) -> dict[str, Any]:
        return {}

    for type_, words in (("A", "not a dict"), ("B", "KeyError"), ("C", "not JSON")):
        with pytest.raises(MappingError, match=words):
            integration.to_message(event(type_, {}))
    with pytest.raises(MappingError, match="subject token"):
        integration.to_message(event("D", {}, stream="a.b-1"))


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda i: IntegrationEvents("Bad Name"), "relay name"),
        (lambda i: IntegrationEvents(subject_prefix="a..b"), "subject prefix"),
        (lambda i: IntegrationEvents(categories="conference"), "not one string"),
        (lambda i: i.map("X", to="Bad.Name"), "subject token"),
        (lambda i: i.map("X", to="X", version=0), "version"),
        (lambda i: i.map("X", to="X", personal="email"), "not one string"),
        (lambda i: i.map("Dup", to="Again"), "mapped twice"),
    ],
)
def test_bad_declarations_are_refused(call: Any, words: str) -> None:
    integration = IntegrationEvents()
    integration.map("Dup", to="Dup")(lambda e: {})
    with pytest.raises(MappingError, match=words):
        call(integration)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (nats.errors.TimeoutError(), BrokerUnavailable),
        (nats.errors.ConnectionClosedError(), BrokerUnavailable),
        (nats.errors.NoServersError(), BrokerUnavailable),
        (ConnectionRefusedError("refused"), BrokerUnavailable),
        (
            nats.js.errors.ServiceUnavailableError(code=503, description="jetstream not ready"),
            BrokerUnavailable,
        ),
        (nats.js.errors.NoStreamResponseError(), PublishRejected),
        (nats.errors.MaxPayloadError(), PublishRejected),
        (
            nats.js.errors.BadRequestError(code=400, err_code=10054, description="message size exceeds"),
            PublishRejected,
        ),
    ],
)
def test_broker_errors_are_translated_once(exc: Exception, kind: type[Exception]) -> None:
    translated = broker_error(exc)
    assert isinstance(translated, kind)
    # The projections runner retries infrastructure errors forever and parks the others.
    assert is_infrastructure_error(translated) == (kind is BrokerUnavailable)
