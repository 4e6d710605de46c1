"""Typed events: encoding, decoding, upcasting and the tolerant-reader policy."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import pytest

from ilji.app import (
    EventFromNewerSchema,
    EventRegistry,
    EventSchemaError,
    RegistryError,
    UnknownEvent,
    UnknownEventType,
)
from ilji.app.codec import from_json, to_json
from ilji.domain.events import NewEvent, RecordedEvent


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Everything:
    when: datetime
    day: date
    ident: uuid.UUID
    price: Decimal
    colour: Colour
    lines: list[Line]
    pair: tuple[int, str]
    many: tuple[int, ...]
    tags: frozenset[str]
    by_id: dict[int, str]
    maybe: int | None
    kind: Literal["a", "b"]
    ratio: float = 1.0
    note: str = "none"


def recorded(new: NewEvent, version: int = 1) -> RecordedEvent:
    """A RecordedEvent as the store would return it for `new`."""
    return RecordedEvent(
        new.id, "s-1", version, version, new.type, dict(new.data), dict(new.metadata), datetime.now(UTC)
    )


def test_every_supported_type_survives_a_round_trip_through_json() -> None:
    value = Everything(
        when=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        day=date(2026, 3, 1),
        ident=uuid.uuid4(),
        price=Decimal("12.30"),
        colour=Colour.BLUE,
        lines=[Line("a", 1), Line("b", 2)],
        pair=(1, "x"),
        many=(1, 2, 3),
        tags=frozenset({"x", "y"}),
        by_id={1: "one", 2: "two"},
        maybe=None,
        kind="b",
        ratio=2,
    )
    data = to_json(value)
    assert data["price"] == "12.30"  # a string: a JSON number would lose the decimal's precision
    assert from_json(Everything, data) == value
    assert isinstance(from_json(Everything, data).ratio, float)


def test_decoding_names_the_bad_field() -> None:
    with pytest.raises(EventSchemaError, match=r"\$\.lines\[0\]\.quantity"):
        from_json(Everything, {**_everything_json(), "lines": [{"sku": "a", "quantity": "x"}]})


def _everything_json() -> dict[str, Any]:
    return {
        "when": "2026-03-01T00:00:00+00:00",
        "day": "2026-03-01",
        "ident": str(uuid.uuid4()),
        "price": "1",
        "colour": "red",
        "lines": [],
        "pair": [1, "x"],
        "many": [],
        "tags": [],
        "by_id": {},
        "maybe": 3,
        "kind": "a",
    }


registry = EventRegistry()


@registry.register(name="ItemAdded", version=3)
@dataclass(frozen=True)
class ItemAdded:
    sku: str
    quantity: int
    note: str = ""


@registry.upcaster("ItemAdded", from_version=1)
def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data["quantity"] = data.pop("qty")
    return data


@registry.upcaster("ItemAdded", from_version=2)
def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    data["sku"] = data["sku"].upper()
    return data


@registry.register
@dataclass(frozen=True)
class CartEmptied:
    reason: str = field(default="unknown")


def test_encode_stores_the_name_data_and_schema_version() -> None:
    new = registry.encode(ItemAdded("ABC", 2), {"user": "ann"})
    assert new.type == "ItemAdded"
    assert new.data == {"sku": "ABC", "quantity": 2, "note": ""}
    assert new.metadata == {"user": "ann", "schema_version": 3}
    assert registry.decode(recorded(new)) == ItemAdded("ABC", 2)


def test_upcasters_chain_from_the_stored_version_and_stored_data_is_untouched() -> None:
    stored = NewEvent("ItemAdded", {"sku": "abc", "qty": 5}, {"schema_version": 1})
    event = recorded(stored)
    assert registry.decode(event) == ItemAdded("ABC", 5)
    assert event.data == {"sku": "abc", "qty": 5}
    middle = NewEvent("ItemAdded", {"sku": "abc", "quantity": 5}, {"schema_version": 2})
    assert registry.decode(recorded(middle)) == ItemAdded("ABC", 5)


def test_an_upcaster_that_changes_nested_data_cannot_change_the_stored_event() -> None:
    nested = EventRegistry()
    nested.register(name="Tagged", version=2)(CartEmptied)

    @nested.upcaster("Tagged", 1)
    def _move(data: dict[str, Any]) -> dict[str, Any]:
        data["meta"]["seen"] = True
        return {"reason": data["meta"]["why"]}

    event = recorded(NewEvent("Tagged", {"meta": {"why": "x"}}))
    assert nested.decode(event) == CartEmptied("x")
    assert event.data == {"meta": {"why": "x"}}


def test_events_without_a_schema_version_are_version_one() -> None:
    assert registry.decode(recorded(NewEvent("ItemAdded", {"sku": "x", "qty": 1}))) == ItemAdded("X", 1)


def test_a_rename_continues_the_chain_under_the_new_name() -> None:
    renamed = EventRegistry()

    renamed.register(name="CartCleared", version=2)(CartEmptied)

    @renamed.upcaster("BasketEmptied", from_version=1, rename_to="CartCleared")
    def _rename(data: dict[str, Any]) -> dict[str, Any]:
        return {"reason": data.get("why", "unknown")}

    old = NewEvent("BasketEmptied", {"why": "timeout"})
    assert renamed.decode(recorded(old)) == CartEmptied("timeout")


def test_tolerant_reader_ignores_extra_fields_and_fills_defaults() -> None:
    new = NewEvent("ItemAdded", {"sku": "A", "quantity": 1, "colour": "red"}, {"schema_version": 3})
    assert registry.decode(recorded(new)) == ItemAdded("A", 1, "")


def test_a_missing_field_without_default_is_an_error() -> None:
    new = NewEvent("ItemAdded", {"sku": "A"}, {"schema_version": 3})
    with pytest.raises(EventSchemaError, match="quantity"):
        registry.decode(recorded(new))


def test_unknown_types_are_kept_as_unknown_events_or_refused() -> None:
    new = NewEvent("SomethingNew", {"x": 1}, {"schema_version": 4})
    assert registry.decode(recorded(new)) == UnknownEvent("SomethingNew", {"x": 1}, 4)
    strict = EventRegistry(unknown="error").include(registry)
    with pytest.raises(UnknownEventType):
        strict.decode(recorded(new))


def test_events_from_newer_code_are_refused() -> None:
    new = NewEvent("ItemAdded", {"sku": "A", "quantity": 1}, {"schema_version": 4})
    with pytest.raises(EventFromNewerSchema):
        registry.decode(recorded(new))


def test_a_gap_in_the_upcaster_chain_is_reported() -> None:
    gap = EventRegistry()
    gap.register(name="ItemAdded", version=2)(ItemAdded)
    with pytest.raises(EventSchemaError, match="no upcaster"):
        gap.decode(recorded(NewEvent("ItemAdded", {"sku": "a", "qty": 1})))


def test_registration_mistakes_are_reported() -> None:
    other = EventRegistry()

    class NotADataclass:
        pass

    with pytest.raises(RegistryError):
        other.register(NotADataclass)
    other.register(name="X")(ItemAdded)
    with pytest.raises(RegistryError):
        other.register(name="X")(CartEmptied)
    with pytest.raises(RegistryError):
        other.encode(CartEmptied())
    other.upcaster("X", 1)(_v1_to_v2)
    with pytest.raises(RegistryError):
        other.upcaster("X", 1)(_v2_to_v3)


def test_names_lists_stored_names() -> None:
    assert registry.names([ItemAdded, CartEmptied]) == ["ItemAdded", "CartEmptied"]
    assert "ItemAdded" in registry
    assert "Nope" not in registry
