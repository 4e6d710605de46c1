"""Fixtures of the integration tests: the contracts that both stores must keep."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ilji import MemoryEventStore, PostgresEventStore


@pytest.fixture(params=["postgres", "memory"])
async def any_store(
    request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[PostgresEventStore | MemoryEventStore]:
    """Each store in turn: PostgreSQL (on the module's database) and its in-memory twin."""
    if request.param == "memory":
        yield MemoryEventStore()
        return
    s = await PostgresEventStore.open(database_url, max_size=5, poll_interval=0.2)
    try:
        yield s
    finally:
        await s.close()
