"""The database seam: whatever the driver, the pool or the socket raises in a block arrives as
an Ilji error, once; Ilji's own errors pass through; the connection always goes back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import psycopg
import psycopg_pool
import pytest
from psycopg import errors as pg_errors

from ilji.domain.errors import IljiError, StoreUnavailable, StreamNotFound, ValidationError
from ilji.store.database import Database, connect


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A pool of one connection: a connection not given back would block the next block."""
    db = await Database.open(database_url, "ilji-seam-test", min_size=1, max_size=1)
    try:
        yield db
    finally:
        await db.close()


async def answers(database: Database) -> bool:
    """The pool's one connection is free and works (waits at most 5 s for it)."""
    async with database.connection(timeout=5.0) as conn:
        cur = await conn.execute("SELECT 1")
        return await cur.fetchone() == (1,)


async def test_a_lost_connection_arrives_as_store_unavailable_and_the_pool_recovers(
    database: Database,
) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        async with database.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert isinstance(raised.value.__cause__, psycopg.OperationalError)
    assert await answers(database)  # the broken connection was replaced


async def test_no_free_connection_in_time_arrives_as_store_unavailable(database: Database) -> None:
    async with database.connection():
        with pytest.raises(StoreUnavailable, match="no database connection available") as raised:
            async with database.connection(timeout=0.05):
                pass  # pragma: no cover - never entered: the only connection is taken
    assert isinstance(raised.value.__cause__, psycopg_pool.PoolTimeout)
    assert await answers(database)


async def test_a_statement_error_is_translated_once_and_the_connection_goes_back(
    database: Database,
) -> None:
    with pytest.raises(ValidationError) as raised:
        async with database.connection() as conn:
            await conn.execute("SELECT 1 / 0")
    assert isinstance(raised.value.__cause__, pg_errors.DivisionByZero)
    assert await answers(database)


async def test_a_socket_error_in_the_block_arrives_as_store_unavailable(database: Database) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        async with database.connection():
            raise ConnectionResetError("the peer went away")
    assert isinstance(raised.value.__cause__, ConnectionResetError)
    assert await answers(database)


async def test_an_ilji_error_raised_in_the_block_passes_through_unchanged(database: Database) -> None:
    error = StreamNotFound("order-1")
    with pytest.raises(StreamNotFound) as raised:
        async with database.connection():
            raise error
    assert raised.value is error
    assert raised.value.__cause__ is None
    assert await answers(database)


async def test_other_exceptions_pass_through_untouched(database: Database) -> None:
    with pytest.raises(KeyError):
        async with database.connection():
            raise KeyError("a bug, not the database")
    assert await answers(database)


async def test_a_driver_error_caught_inside_the_block_stays_the_callers(database: Database) -> None:
    async with database.connection() as conn:
        try:
            await conn.execute("SELECT 1 / 0")
        except pg_errors.DivisionByZero:
            caught = True
        cur = await conn.execute("SELECT 2")  # the connection is still usable (autocommit)
        assert await cur.fetchone() == (2,)
    assert caught


async def change_then_fail(database: Database, failing_statement: str | None) -> None:
    """Change a session setting in a transaction, then fail: with an Ilji error, or a statement's."""
    async with database.transaction() as conn:
        await conn.execute("SELECT set_config('ilji.seam_test', 'undone', false)")
        if failing_statement is None:
            raise StreamNotFound("order-1")
        await conn.execute(failing_statement.encode())


async def test_a_transaction_commits_on_success_and_rolls_back_on_an_error(database: Database) -> None:
    # One pooled connection: the session setting made in a transaction is seen by the next block.
    async with database.transaction() as conn:
        await conn.execute("SELECT set_config('ilji.seam_test', 'kept', false)")
    with pytest.raises(StreamNotFound):
        await change_then_fail(database, None)
    with pytest.raises(ValidationError):
        await change_then_fail(database, "SELECT 1 / 0")
    async with database.connection() as conn:
        cur = await conn.execute("SELECT current_setting('ilji.seam_test')")
        assert await cur.fetchone() == ("kept",)


async def test_a_dedicated_connection_translates_what_the_driver_raises(database_url: str) -> None:
    with pytest.raises(StoreUnavailable):
        async with connect(database_url) as conn:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    with pytest.raises(IljiError) as raised:
        async with connect(database_url) as conn:
            await conn.execute("SELECT * FROM no_such_table")
    assert type(raised.value) is not IljiError  # a specific error (the schema), not the fallback


async def test_a_dedicated_connection_nobody_answers_is_store_unavailable() -> None:
    with socket.socket() as listener:  # a port that was free a moment ago and is closed now
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    with pytest.raises(StoreUnavailable) as raised:
        async with connect(f"postgresql://ilji@127.0.0.1:{port}/ilji", connect_timeout=5):
            pass  # pragma: no cover - never connected
    assert isinstance(raised.value.__cause__, psycopg.OperationalError)


async def test_an_ilji_error_in_a_dedicated_connection_passes_through(database_url: str) -> None:
    error = StreamNotFound("order-1")
    with pytest.raises(StreamNotFound) as raised:
        async with connect(database_url):
            raise error
    assert raised.value is error


async def _backend(db: Database) -> int:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT pg_backend_pid()")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_the_pool_lends_the_connection_given_back_last(database_url: str) -> None:
    """A stack, not a queue: a lone caller keeps one warm server process (`_StackPool`)."""
    db = await Database.open(database_url, "ilji-seam-stack", min_size=3, max_size=3)
    try:
        first = await _backend(db)
        assert [await _backend(db) for _ in range(5)] == [first] * 5
        # Two at once: the second borrower gets another connection; given back in the order
        # inner-then-outer, the outer one (returned last) is lent next.
        async with db.connection() as outer:
            async with db.connection() as inner:
                inner_pid = inner.info.backend_pid
            outer_pid = outer.info.backend_pid
        assert outer_pid != inner_pid
        assert await _backend(db) == outer_pid
    finally:
        await db.close()


async def test_a_broken_connection_gets_the_idle_ones_checked(database_url: str) -> None:
    """After every server process of the pool dies (a database restart), one failed borrow
    starts a check of the idle connections: a burst afterwards meets no dead connection, though
    the dead ones sat at the bottom of the stack."""
    db = await Database.open(database_url, "ilji-seam-sweep", min_size=4, max_size=4)
    try:
        async with db.connection() as c1, db.connection() as c2, db.connection() as c3:
            pids = [c.info.backend_pid for c in (c1, c2, c3)]
        async with connect(database_url) as admin:
            for pid in [*pids, await _backend(db)]:
                await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(StoreUnavailable):
            await _backend(db)  # the top of the stack is dead: the caller sees it, once
        for _ in range(100):
            if db.stats()["pool_checks"] == 1 and db.stats()["pool_available"] == 4:
                break
            await asyncio.sleep(0.05)
        assert db.stats()["pool_checks"] == 1
        # Four at once reach the whole stack: every connection works.
        async with db.connection() as a, db.connection() as b, db.connection() as c, db.connection() as d:
            for conn in (a, b, c, d):
                await conn.execute("SELECT 1")
    finally:
        await db.close()
