"""Property test: any sequence of appends behaves like a tiny in-memory model of versions."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ilji import ANY, EXISTS, NO_STREAM, NewEvent, PostgresEventStore, WrongExpectedVersion

expectations = st.one_of(
    st.sampled_from([ANY, NO_STREAM, EXISTS]),
    st.integers(min_value=0, max_value=6),
)
operations = st.lists(
    st.tuples(st.integers(min_value=0, max_value=2), expectations, st.integers(min_value=1, max_value=3)),
    min_size=1,
    max_size=12,
)


def model_allows(expected: object, version: int) -> bool:
    if expected is ANY:
        return True
    if expected is NO_STREAM:
        return version == 0
    if expected is EXISTS:
        return version > 0
    return expected == version


@pytest.fixture(scope="module")
async def shared_store(database_url: str):  # type: ignore[no-untyped-def]
    async with await PostgresEventStore.open(database_url, max_size=3) as store:
        yield store


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_appends_follow_the_expected_version_model(shared_store: PostgresEventStore, ops) -> None:  # type: ignore[no-untyped-def]
    prefix = f"prop{uuid.uuid4().hex[:10]}"
    model = {i: 0 for i in range(3)}
    last_position = 0
    for stream_index, expected, n in ops:
        stream = f"{prefix}-{stream_index}"
        batch = [NewEvent("Prop", {"k": k}) for k in range(n)]
        if model_allows(expected, model[stream_index]):
            result = await shared_store.append(stream, batch, expected)
            assert result.first_version == model[stream_index] + 1
            assert result.last_version == model[stream_index] + n
            assert result.first_position > last_position
            last_position = result.last_position
            model[stream_index] += n
        else:
            with pytest.raises(WrongExpectedVersion) as info:
                await shared_store.append(stream, batch, expected)
            assert info.value.actual == model[stream_index]
        for i, version in model.items():
            assert await shared_store.stream_version(f"{prefix}-{i}") == version
    log = await shared_store.read_category(prefix, 0, 1000)
    assert len(log) == sum(model.values())
