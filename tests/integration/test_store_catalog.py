"""Stream listings and bounded counts (`ilji.store.catalog`), under both collation orders.

Every test gets a database of its own: listings see every stream of their database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from ilji import NewEvent, PostgresEventStore, ValidationError
from ilji.embedded import EmbeddedPostgres
from ilji.store import catalog as catalog_module
from ilji.store.catalog import Catalog, StreamListing, sorts_by_code_point, successor
from tests.conftest import new_database

NAMES = [
    "order-1",
    "order-10",
    "order-2",
    "order",
    "orderline-1",
    "order!x",
    "ab",
    "a-c",
    "a-a",
    "ad",
    "café-1",
    "cafe-1",
    "꽃-1",
    "$system",
]


@pytest.fixture
async def fresh_store(pg_server: EmbeddedPostgres) -> AsyncIterator[PostgresEventStore]:
    store = await PostgresEventStore.open(new_database(pg_server), max_size=3)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def filled(fresh_store: PostgresEventStore) -> PostgresEventStore:
    for i, name in enumerate(NAMES):
        if name.startswith("$"):
            async with fresh_store.database.connection() as conn:  # appends refuse $ names
                await conn.execute(
                    "INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)"
                    " VALUES (1, %s, %s, 1, 'T', '{}', '{}')",
                    (uuid.uuid4(), name),
                )
            continue
        await fresh_store.append(name, [NewEvent("T", {"i": k}) for k in range(i % 3 + 1)])
    return fresh_store


def expected(prefix: str = "", category: str | None = None) -> list[str]:
    names = [n for n in NAMES if n.startswith(prefix)]
    if category is not None:
        names = [n for n in names if n.split("-", 1)[0] == category]
    return sorted(names)  # Python compares by code point


async def walk_all(catalog: Catalog, ordered: bool, **query: object) -> list[str]:
    names: list[str] = []
    after = ""
    for _ in range(50):
        page: StreamListing = await catalog.list_streams(
            after=after,
            limit=2,
            code_point_order=ordered,
            **query,  # type: ignore[arg-type]
        )
        names += [s.stream for s in page.streams]
        if page.next is None:
            return names
        after = page.next
    raise AssertionError("the listing never ended")


def test_successor_is_the_first_string_after_every_extension() -> None:
    assert successor("order-") == "order."
    assert successor("a\U0010ffff") == "b"
    assert successor("\U0010ffff") is None
    assert successor("\ud7ff") == "\ue000"


@pytest.mark.parametrize("ordered", [True, False], ids=["range", "walk"])
@pytest.mark.parametrize(
    ("prefix", "category"),
    [
        ("", None),
        ("order", None),
        ("order-1", None),
        ("a-", None),
        ("", "order"),
        ("ord", "order"),
        ("order-1", "order"),
        ("x", "order"),
        ("caf", None),
        ("꽃", None),
        ("$", None),
        ("zzz", None),
    ],
)
async def test_listing_pages_through_exactly_the_matching_streams(
    filled: PostgresEventStore, ordered: bool, prefix: str, category: str | None
) -> None:
    catalog = Catalog(filled.database)
    assert await walk_all(catalog, ordered, prefix=prefix, category=category) == expected(prefix, category)


@pytest.mark.parametrize("ordered", [True, False], ids=["range", "walk"])
async def test_ilji_own_streams_can_be_left_out(filled: PostgresEventStore, ordered: bool) -> None:
    catalog = Catalog(filled.database)
    names = await walk_all(catalog, ordered, include_system=False)
    assert names == [n for n in expected() if not n.startswith("$")]


async def test_a_listed_stream_carries_its_version_and_newest_event(filled: PostgresEventStore) -> None:
    page = await Catalog(filled.database).list_streams(prefix="order-10")
    (summary,) = page.streams
    newest = (await filled.read_stream("order-10", None, 1, "backward"))[0]
    assert (summary.stream, summary.version) == ("order-10", newest.version)
    assert summary.last_position == newest.position
    assert summary.last_recorded_at == newest.recorded_at
    assert page.next is None


async def test_the_embedded_database_sorts_by_code_point(fresh_store: PostgresEventStore) -> None:
    assert await Catalog(fresh_store.database).code_point_order() is True


@pytest.mark.parametrize(
    ("provider", "collate", "expected_order"),
    [
        ("c", "C", True),
        ("c", "POSIX", True),
        ("c", "C.UTF-8", True),
        ("c", "C.utf8", True),
        ("b", "C", True),
        ("b", "C.UTF-8", True),
        ("c", "en_US.UTF-8", False),
        ("i", "en-US", False),
        ("i", "und", False),
    ],
)
def test_only_code_point_orders_get_the_range(provider: str, collate: str, expected_order: bool) -> None:
    assert sorts_by_code_point(provider, collate) is expected_order


async def test_the_walk_stops_at_its_budget_and_resumes(
    filled: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "WALK_BUDGET", 3)
    catalog = Catalog(filled.database)
    first = await catalog.list_streams(prefix="order-", code_point_order=False)
    assert first.next is not None  # more names lie beyond the budget
    assert await walk_all(catalog, False, prefix="order-") == expected("order-")


@pytest.mark.parametrize(
    "query",
    [
        {"prefix": "a b"},
        {"prefix": "x" * 201},
        {"after": "\x00"},
        {"category": "a-b"},
        {"limit": 0},
        {"limit": 1001},
    ],
)
async def test_bad_input_is_a_validation_error(
    fresh_store: PostgresEventStore, query: dict[str, object]
) -> None:
    with pytest.raises(ValidationError):
        await Catalog(fresh_store.database).list_streams(**query)  # type: ignore[arg-type]


async def test_stats_count_events_and_streams_and_bucket_recent_appends(
    fresh_store: PostgresEventStore,
) -> None:
    catalog = Catalog(fresh_store.database)
    empty = await catalog.stats()
    assert (empty.events, empty.streams, empty.last_position, empty.last_recorded_at) == (0, 0, 0, None)
    assert len(empty.buckets) == 60 and sum(b.events for b in empty.buckets) == 0
    for i in range(3):
        await fresh_store.append(f"s-{i}", [NewEvent("T", {}) for _ in range(i + 1)])
    stats = await catalog.stats(window_minutes=60)
    assert (stats.events, stats.events_exact, stats.streams, stats.streams_exact) == (6, True, 3, True)
    assert stats.bucket_seconds == 60
    assert sum(b.events for b in stats.buckets) == 6 == stats.events_last_minute
    assert stats.buckets[-1].start <= datetime.now(UTC) < stats.buckets[-1].start + timedelta(seconds=60)
    assert stats.complete_since == stats.buckets[0].start


async def test_counts_past_their_caps_say_they_are_estimates(
    fresh_store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(4):
        await fresh_store.append(f"c-{i}", [NewEvent("T", {}) for _ in range(3)])
    monkeypatch.setattr(catalog_module, "EVENT_COUNT_CAP", 5)
    monkeypatch.setattr(catalog_module, "STREAM_COUNT_CAP", 2)
    monkeypatch.setattr(catalog_module, "APPEND_SCAN_CAP", 4)
    stats = await Catalog(fresh_store.database).stats()
    assert (stats.events_exact, stats.streams_exact) == (False, False)
    assert stats.events >= 5 and stats.streams >= 2
    assert sum(b.events for b in stats.buckets) == 4  # only the newest 4 were read
    assert stats.complete_since > stats.buckets[0].start


async def test_hidden_events_are_not_counted(fresh_store: PostgresEventStore) -> None:
    for i in range(3):
        await fresh_store.append(f"h-{i}", [NewEvent("T", {}) for _ in range(2)])
    await fresh_store.delete_stream("h-1")
    stats = await Catalog(fresh_store.database).stats()
    # h-0 and h-2 (4 events), and the delete's own records: one event in $lifecycle, one in $audit.
    assert (stats.events, stats.streams) == (6, 4)
    assert sum(b.events for b in stats.buckets) == 6


async def test_hidden_streams_within_the_cap_do_not_make_a_short_walk_look_exact(
    fresh_store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 6 streams, the first 3 by name soft-deleted, a cap of 4: the walk stops before seeing all
    # names, so the visible count (1 of the 4 walked) must not be reported as exact.
    for i in range(6):
        await fresh_store.append(f"w-{i}", [NewEvent("T", {})])
    for i in range(3):
        await fresh_store.delete_stream(f"w-{i}")
    monkeypatch.setattr(catalog_module, "STREAM_COUNT_CAP", 4)
    stats = await Catalog(fresh_store.database).stats()
    assert stats.streams_exact is False
    monkeypatch.setattr(catalog_module, "STREAM_COUNT_CAP", 100)
    stats = await Catalog(fresh_store.database).stats()
    assert (stats.streams, stats.streams_exact) == (5, True)  # w-3..w-5, $lifecycle, $audit
