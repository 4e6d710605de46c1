"""Validation and encoding rules, without a database."""

from __future__ import annotations

import uuid

import pytest

from ilji import ANY, EXISTS, NO_STREAM, ValidationError
from ilji.domain.events import NewEvent, category_of, new_event_id
from ilji.domain.validation import (
    validate_category,
    validate_event_type,
    validate_events,
    validate_expected_version,
    validate_stream_name,
)
from ilji.store.encoding import encode_object


@pytest.mark.parametrize("name", ["order-1", "주문-1", "a", "x" * 200, "o'brien-1", "a.b:c/d-1"])
def test_good_stream_names(name: str) -> None:
    assert validate_stream_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("x" * 201, "at most 200"),
        ("a b", "whitespace"),
        ("a\u00a0b", r"U\+00A0"),
        ("a\u2028b", "whitespace"),
        ("a\x7fb", r"U\+007F"),
        ("a\ud800b", r"U\+D800"),
        ("$system", "reserved"),
        (42, "string"),
    ],
)
def test_bad_stream_names(name: object, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment) as info:
        validate_stream_name(name)
    assert info.value.field == "stream"


def test_system_streams_are_allowed_when_asked() -> None:
    assert validate_stream_name("$audit", allow_system=True) == "$audit"


def test_event_types() -> None:
    assert validate_event_type("OrderPlaced.v2") == "OrderPlaced.v2"
    for bad in ("", "a b", "x" * 201, "new\nline", None):
        with pytest.raises(ValidationError):
            validate_event_type(bad)


def test_categories() -> None:
    assert category_of("order-12-a") == "order"
    assert category_of("order") == "order"
    assert validate_category("order") == "order"
    with pytest.raises(ValidationError, match="must not contain '-'"):
        validate_category("order-1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (7, 7), ("any", ANY), ("no_stream", NO_STREAM), ("exists", EXISTS), (ANY, ANY)],
)
def test_expected_versions(value: object, expected: object) -> None:
    assert validate_expected_version(value) == expected


@pytest.mark.parametrize("value", [-1, "latest", True, 1.5, None, "3"])
def test_bad_expected_versions(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        validate_expected_version(value)
    assert info.value.field == "expected_version"


def test_batches() -> None:
    event = NewEvent("T", {})
    with pytest.raises(ValidationError, match="at least one"):
        validate_events([])
    with pytest.raises(ValidationError, match="appears twice"):
        validate_events([event, event])
    with pytest.raises(ValidationError, match=r"events\[1\]"):
        validate_events([event, "not an event"])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="must be str"):
        encode_object({1: "x"}, "data")  # type: ignore[dict-item]


def test_encoding_refuses_what_jsonb_cannot_hold() -> None:
    assert encode_object({"a": [1, None, "é"]}, "data") == '{"a":[1,null,"é"]}'
    for bad in ({"x": float("inf")}, {"x": [float("nan")]}, {"x": {"y": "\x00"}}, {"x": {1, 2}}):
        with pytest.raises(ValidationError) as info:
            encode_object(bad, "data")
        assert info.value.field == "data"
    # a literal backslash followed by u0000 is ordinary text
    assert encode_object({"x": "\\u0000"}, "data") == '{"x":"\\\\u0000"}'


def test_new_event_ids_are_time_ordered_uuid7() -> None:
    ids = [new_event_id() for _ in range(50)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == 50
    millis = [i.int >> 80 for i in ids]
    assert millis == sorted(millis)
