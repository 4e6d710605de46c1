"""What the store tells an operator: transactions that hold the global log, and the position limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from ilji import NewEvent, PostgresEventStore
from ilji.domain.errors import PositionLimitReached
from ilji.domain.events import TRANSACTION_ID_LIMIT
from ilji.store.database import translate
from tests.position_limit import past_the_position_limit

SECRET = "alice@example.com"


@pytest.fixture
def position_limit(database_url: str) -> Iterator[str]:
    """A category whose appends meet the real CHECK violation at the position limit."""
    with past_the_position_limit(database_url) as category:
        yield category


@pytest.mark.parametrize("batch", [1, 3])
async def test_an_append_past_the_position_limit_is_a_clear_error_without_row_data(
    store: PostgresEventStore, position_limit: str, batch: int
) -> None:
    stream = f"{position_limit}-1"
    with pytest.raises(PositionLimitReached) as info:
        await store.append(stream, [NewEvent("Registered", {"email": SECRET}) for _ in range(batch)])
    cause = info.value.__cause__
    # The database's own error carries the row, event data included: that is what must not leak.
    assert isinstance(cause, psycopg.errors.CheckViolation)
    assert SECRET in str(cause)
    assert SECRET not in info.value.message
    assert "Failing row" not in info.value.message
    assert "2^41" in info.value.message
    assert await store.stream_version(stream) == 0


async def test_other_database_errors_keep_only_the_primary_message(database_url: str) -> None:
    with (
        psycopg.connect(database_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.CheckViolation) as raised,
    ):
        conn.execute(
            "INSERT INTO ilji.events (position, id, stream, version, type, data, metadata) "
            "VALUES (1, %s, 'x-1', 1, 'T', '[]', %s)",
            (uuid.uuid4(), f'{{"email": "{SECRET}"}}'),
        )
    assert SECRET in str(raised.value)  # DETAIL: Failing row contains (...)
    error = translate(raised.value)
    assert SECRET not in error.message
    assert "events_data_check" in error.message


async def test_transaction_ids_left_counts_down_to_two_to_the_41(store: PostgresEventStore) -> None:
    before = await store.transaction_ids_left()
    assert 0 < before < TRANSACTION_ID_LIMIT
    await store.append(f"ids-{uuid.uuid4().hex}", [NewEvent("T", {})])
    after = await store.transaction_ids_left()
    assert after < before  # the append used a transaction id; asking used none


async def test_a_forgotten_prepared_transaction_shows_as_the_oldest_transaction(
    store: PostgresEventStore, database_url: str
) -> None:
    gid = f"ilji-test-{uuid.uuid4().hex}"
    held = f"held-{uuid.uuid4().hex}"
    conn = psycopg.connect(database_url, autocommit=True)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_current_xact_id()")  # a writing transaction: it has an id
        conn.execute(f"PREPARE TRANSACTION '{gid}'")
        conn.close()  # the session is gone; the prepared transaction stays
        # It holds the global log: an event appended after it is not visible yet.
        await store.append(held, [NewEvent("T", {})])
        assert [e for e in await store.read_all(0, 10_000) if e.stream == held] == []
        assert await store.oldest_transaction_age() > 0
        assert (await store.info()).prepared_transactions == 1
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f"ROLLBACK PREPARED '{gid}'")
    assert [e.stream for e in await store.read_all(0, 10_000) if e.stream == held] == [held]
    assert (await store.info()).prepared_transactions == 0
