"""The decisions both stores share when an append meets stored ids or a stream that moved on."""

from __future__ import annotations

import uuid

import pytest

from ilji.domain.errors import DuplicateEventId, WrongExpectedVersion
from ilji.domain.events import ANY, NO_STREAM, AppendResult
from ilji.domain.validation import REUSED_BY_ANOTHER_CALL, REUSED_IN_PART
from ilji.store.append_rules import (
    REUSED_IN_ANOTHER_BATCH,
    REUSED_IN_ANOTHER_STREAM,
    REUSED_PARTLY,
    StoredId,
    resolve_resent_call,
    resolve_reused_ids,
    version_conflict,
)


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def one_append(stream: str, batch: list[uuid.UUID], version: int, position: int) -> dict[uuid.UUID, StoredId]:
    """Where one earlier append of `batch` to `stream` stored its events."""
    last = len(batch) - 1
    return {
        i: StoredId(stream, version + k, position + k, joined_before=k > 0, joined_after=k < last)
        for k, i in enumerate(batch)
    }


def test_no_stored_id_is_a_plain_conflict() -> None:
    assert resolve_reused_ids("order-1", ids(2), {}) is None


def test_an_exact_retry_answers_with_the_stored_result() -> None:
    batch = ids(3)
    result = resolve_reused_ids("order-1", batch, one_append("order-1", batch, 4, 100))
    assert result == AppendResult("order-1", 4, 6, 100, 102, idempotent=True)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("partly", REUSED_PARTLY),
        ("other stream", REUSED_IN_ANOTHER_STREAM),
        ("reordered", REUSED_IN_ANOTHER_BATCH),
    ],
)
def test_a_reuse_is_refused_with_its_reason_and_the_reused_ids(case: str, reason: str) -> None:
    batch = ids(2)
    found = one_append("order-1" if case != "other stream" else "order-2", batch, 1, 10)
    asked = {"partly": [batch[0], uuid.uuid4()], "other stream": batch, "reordered": batch[::-1]}[case]
    with pytest.raises(DuplicateEventId) as raised:
        resolve_reused_ids("order-1", asked, found)
    assert raised.value.reason == reason
    assert raised.value.event_ids == [str(i) for i in asked if i in found]


def test_a_prefix_of_an_earlier_batch_is_not_a_retry() -> None:
    batch = ids(3)
    with pytest.raises(DuplicateEventId, match=REUSED_IN_ANOTHER_BATCH):
        resolve_reused_ids("order-1", batch[:2], one_append("order-1", batch, 1, 10))


def test_two_adjacent_earlier_appends_together_are_not_a_retry() -> None:
    first, second = ids(2), ids(2)
    found = {**one_append("order-1", first, 1, 10), **one_append("order-1", second, 3, 12)}
    with pytest.raises(DuplicateEventId, match=REUSED_IN_ANOTHER_BATCH):
        resolve_reused_ids("order-1", first + second, found)


def test_a_resent_call_answers_with_every_part_when_stored_by_one_call() -> None:
    a, b = ids(1), ids(2)
    found = {**one_append("a-1", a, 1, 10), **one_append("b-1", b, 5, 12)}
    results = resolve_resent_call([("a-1", a), ("b-1", b)], found, lambda stored: len(stored) == 2)
    assert [r.stream for r in results] == ["a-1", "b-1"]
    assert all(r.idempotent for r in results)


def test_a_call_whose_parts_were_stored_by_other_calls_is_refused() -> None:
    a, b = ids(1), ids(1)
    found = {**one_append("a-1", a, 1, 10), **one_append("b-1", b, 1, 20)}
    with pytest.raises(DuplicateEventId) as raised:
        resolve_resent_call([("a-1", a), ("b-1", b)], found, lambda _stored: False)
    assert (raised.value.reason, raised.value.part) == (REUSED_BY_ANOTHER_CALL, 0)


def test_a_call_with_some_parts_not_stored_is_refused_at_the_first_stored_part() -> None:
    a, b = ids(1), ids(1)
    with pytest.raises(DuplicateEventId) as raised:
        resolve_resent_call([("a-1", a), ("b-1", b)], one_append("b-1", b, 1, 20), lambda _stored: True)
    assert (raised.value.reason, raised.value.part) == (REUSED_IN_PART, 1)


def test_a_refused_part_is_named_in_the_error() -> None:
    a, b = ids(1), ids(1)
    with pytest.raises(DuplicateEventId) as raised:
        resolve_resent_call([("a-1", a), ("b-1", b)], one_append("c-1", b, 1, 20), lambda _stored: True)
    assert (raised.value.reason, raised.value.part) == (REUSED_IN_ANOTHER_STREAM, 1)


def test_a_version_conflict_names_the_expectation_and_the_part() -> None:
    alone = version_conflict("order-1", NO_STREAM, 3)
    in_call = version_conflict("order-1", 2, 3, part=1)
    assert isinstance(alone, WrongExpectedVersion)
    assert (alone.expected, alone.actual, alone.part) == (NO_STREAM.value, 3, None)
    assert (in_call.expected, in_call.part) == (2, 1)
    assert version_conflict("order-1", ANY, 0).expected == ANY.value
