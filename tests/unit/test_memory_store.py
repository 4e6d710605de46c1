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


def test_recorded_events_take_the_id_and_time_as_postgres_bytes() -> None:
    import uuid

    from ilji.domain.events import datetime_from_bytes, uuid_from_bytes

    new_id = uuid.uuid4()
    now = datetime(2026, 12, 7, 16, 30, 1, 123456, tzinfo=UTC)
    micros = (now - datetime(2000, 1, 1, tzinfo=UTC)) // __import__("datetime").timedelta(microseconds=1)
    stored = RecordedEvent(new_id.bytes, "s-1", 1, 5, "T", "{}", "{}", micros.to_bytes(8, "big", signed=True))
    assert stored._id == new_id.bytes  # not a UUID until read
    assert stored == RecordedEvent(new_id, "s-1", 1, 5, "T", {}, {}, now)
    assert type(stored.id) is uuid.UUID and stored.id == new_id and hash(stored.id) == hash(new_id)
    assert str(stored.id) == str(new_id) and stored.id.version == 4
    assert stored.recorded_at == now and stored.recorded_at.tzinfo is not None
    before = (-1).to_bytes(8, "big", signed=True)  # one microsecond before 2000
    assert datetime_from_bytes(before) == datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert uuid_from_bytes(bytes(16)) == uuid.UUID(int=0)
    with pytest.raises(ValueError, match="16 bytes"):
        uuid_from_bytes(b"short")
    with pytest.raises(ValueError, match="8 bytes"):
        datetime_from_bytes(b"short")


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
