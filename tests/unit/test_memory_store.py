"""The in-memory twin: lazy events, settings, and the memory store's follow."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ilji import EventStore, MemoryEventStore, NewEvent, PostgresEventStore, RecordedEvent
from ilji.settings import load_settings


def test_both_stores_implement_the_port() -> None:
    assert isinstance(MemoryEventStore(), EventStore)
    assert issubclass(PostgresEventStore, EventStore)


def test_recorded_events_decode_lazily_and_compare_by_value() -> None:
    now = datetime.now(UTC)
    eager = RecordedEvent(new_id := __import__("uuid").uuid4(), "s-1", 1, 5, "T", {"a": 1}, {}, now)
    lazy = RecordedEvent(new_id, "s-1", 1, 5, "T", '{"a":1}', "{}", now)
    assert lazy._data == '{"a":1}'  # not parsed until read
    assert lazy == eager
    assert lazy.data == {"a": 1}
    assert lazy.category == "s"
    assert "s-1" in repr(lazy)


async def test_memory_follow_wakes_on_append() -> None:
    store = MemoryEventStore()
    got: list[str] = []

    async def follow() -> None:
        async for event in store.follow(0):
            got.append(event.type)
            if len(got) == 2:
                return

    task = asyncio.create_task(follow())
    await store.append("a-1", [NewEvent("One", {})])
    await asyncio.sleep(0.01)
    await store.append("a-2", [NewEvent("Two", {})])
    await asyncio.wait_for(task, 2)
    assert got == ["One", "Two"]


def test_settings_flags_override_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ILJI_DATABASE_URL", "postgresql://env/db")
    monkeypatch.setenv("ILJI_POOL_MAX_SIZE", "7")
    settings = load_settings(database_url="postgresql://flag/db", data_dir=None)
    assert settings.database_url == "postgresql://flag/db"
    assert settings.pool_max_size == 7
    monkeypatch.setenv("ILJI_DATABASE_URL", "  ")
    assert load_settings().database_url is None
    assert load_settings(data_dir=tmp_path).data_dir == tmp_path
