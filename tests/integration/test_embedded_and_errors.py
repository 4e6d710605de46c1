"""The embedded server's failure modes, and what callers see when the database is away."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ilji import NewEvent, PostgresEventStore, StoreUnavailable
from ilji.domain.errors import ConfigurationError
from ilji.embedded import start_embedded


def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a directory")
    with pytest.raises(ConfigurationError, match="not a directory"):
        start_embedded(target)


def test_a_data_dir_holding_something_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="not a PostgreSQL data directory"):
        start_embedded(tmp_path)
    assert (tmp_path / "pg" / "notes.txt").read_text() == "mine"


def test_a_data_dir_under_a_file_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(ConfigurationError, match="cannot create"):
        start_embedded(tmp_path / "blocker" / "data")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_database_raises_store_unavailable() -> None:
    url = f"postgresql://nobody@127.0.0.1:{_closed_port()}/nothing"
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        await PostgresEventStore.open(url, connect_timeout=1.0)


async def test_losing_the_database_mid_life_raises_store_unavailable(database_url: str) -> None:
    store = await PostgresEventStore.open(database_url, max_size=1)
    try:
        async with store.database.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    except Exception:
        pass
    # The pool notices the broken connection and replaces it: the store recovers by itself.
    for _ in range(3):
        try:
            await store.append("recover-1", [NewEvent("T", {})])
            break
        except StoreUnavailable:
            continue
    assert await store.stream_version("recover-1") >= 1
    await store.close()
