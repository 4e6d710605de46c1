"""What the store holds, at a glance: stream listings and counts (for the console and the API).

The event table has no table of streams: a stream exists because it has events. Listing
streams therefore walks the unique index on (stream, version) with a loose index scan, one
index descent per stream, and never reads every event (see the `catalog_*.sql` files). Counts
and the chart of recent appends are bounded the same way, so the console's overview costs about
as much on a store of a billion events as on an empty one; past a bound the answer says that it
is an estimate or partial instead of getting slower.

A prefix search must respect the column's collation. Under a code-point order (C, POSIX,
C.UTF-8 and the builtin collations, which Ilji's embedded PostgreSQL uses) the names that start
with a prefix form one range of the index, read with `>= prefix AND < successor(prefix)` and
stopped at its end. Under a linguistic collation (en_US, ICU) they do not: `a-c` sorts between
`ab` and `ad`. There the walk visits a bounded number of names per page and says where it
stopped, and the client asks for the next page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ilji.domain.errors import ValidationError
from ilji.domain.validation import validate_category, validate_stream_name
from ilji.store import sql
from ilji.store.database import Database

_COLLATION = sql.load("catalog_collation")
_STREAMS_RANGE = sql.load("catalog_streams_range")
_STREAMS_WALK = sql.load("catalog_streams_walk")
_COUNTS = sql.load("catalog_counts")
_APPENDS = sql.load("catalog_appends")

#: The most streams one listing returns.
MAX_LIST_LIMIT = 1000
#: Names a walk visits per page under a linguistic collation (one index descent each).
WALK_BUDGET = 2000
#: Events counted exactly; past this the count is the planner's estimate.
EVENT_COUNT_CAP = 100_000
#: Streams counted exactly; past this the count is the planner's estimate.
STREAM_COUNT_CAP = 10_000
#: The newest events read to draw the chart of appends.
APPEND_SCAN_CAP = 50_000
#: Buckets of the chart of appends.
APPEND_BUCKETS = 60

_CODE_POINT_COLLATIONS = {"c", "posix", "c.utf-8", "c.utf8", "ucs_basic", "pg_c_utf8"}


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """One stream: its version (number of events) and its newest event's position and time."""

    stream: str
    version: int
    last_position: int
    last_recorded_at: datetime


@dataclass(frozen=True, slots=True)
class StreamListing:
    """A page of streams in name order; pass `next` as `after` for the next page (None: no more)."""

    streams: list[StreamSummary]
    next: str | None


@dataclass(frozen=True, slots=True)
class AppendBucket:
    """Events recorded from `start` for one bucket's length."""

    start: datetime
    events: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts for the overview, and appends per bucket over a recent window.

    `follow_from` is a position to follow the log from: nothing at or below it can still appear.
    """

    events: int
    events_exact: bool
    streams: int
    streams_exact: bool
    last_position: int
    last_recorded_at: datetime | None
    follow_from: int
    bucket_seconds: int
    buckets: list[AppendBucket]
    complete_since: datetime
    events_last_minute: int


def successor(prefix: str) -> str | None:
    """The smallest string, in code-point order, above every string that starts with `prefix`.

    None when there is none (a prefix made only of U+10FFFF, the last code point).
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code > 0x10FFFF:
            continue
        if 0xD800 <= code <= 0xDFFF:  # surrogates are not characters (nor valid UTF-8)
            code = 0xE000
        return "".join(chars) + chr(code)
    return None


def sorts_by_code_point(provider: str, collate: str) -> bool:
    """Whether a collation (`pg_collation.collprovider`, its locale) orders text by code point."""
    # b: PostgreSQL's builtin provider (C, C.UTF-8, PG_UNICODE_FAST), all by code point. libc's
    # C and POSIX compare bytes, which in UTF-8 is code-point order; glibc's C.UTF-8 sorts by
    # code point too. ICU (i) and every other libc locale are linguistic.
    return provider == "b" or (provider == "c" and collate.lower() in _CODE_POINT_COLLATIONS)


def _scope(prefix: str, category: str | None) -> tuple[str, str | None] | None:
    """The prefix every listed name starts with, and the range's end; None when nothing can match."""
    if category is None:
        return prefix, successor(prefix) if prefix else None
    # A category's streams are named `category` or `category-...`: they start with `category`.
    if prefix.startswith(category):
        effective = prefix
    elif category.startswith(prefix):
        effective = category
    else:
        return None
    # ... and all sort below `category.` ('.' follows '-'), which is tighter than the successor
    # of `category`; names in between with another category are filtered out by the query.
    upper = successor(effective)
    limit = category + "."
    return effective, limit if upper is None or limit < upper else upper


class Catalog:
    """Stream listings and bounded counts over one store's database (`store.database`)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._code_point_order: bool | None = None

    async def code_point_order(self) -> bool:
        """Whether stream names sort by code point in the database (asked once, then remembered)."""
        if self._code_point_order is None:
            row = await self._one(_COLLATION, {})
            provider, collate = row if row is not None else ("c", "C")
            self._code_point_order = sorts_by_code_point(str(provider), str(collate or ""))
        return self._code_point_order

    async def list_streams(
        self,
        *,
        prefix: str = "",
        category: str | None = None,
        after: str = "",
        limit: int = 50,
        include_system: bool = True,
        code_point_order: bool | None = None,
    ) -> StreamListing:
        """Streams whose names start with `prefix` (and are of `category`), in name order, after `after`.

        `include_system=False` leaves out Ilji's own streams (names starting with `$`).

        `code_point_order` overrides the detected collation (tests use it to try both walks).
        """
        if prefix:
            validate_stream_name(prefix, allow_system=True)
        if after:
            validate_stream_name(after, allow_system=True)
        if category is not None:
            validate_category(category)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValidationError("limit", f"must be an integer from 1 to {MAX_LIST_LIMIT}")
        scope = _scope(prefix, category)
        if scope is None:
            return StreamListing([], None)
        effective, upper = scope
        params: dict[str, Any] = {
            "lower": effective,
            "upper": upper,
            "prefix": effective,
            "category": category,
            "after": after,
            "system": include_system,
        }
        ordered = code_point_order if code_point_order is not None else await self.code_point_order()
        if ordered:
            rows = await self._all(_STREAMS_RANGE, {**params, "limit": limit + 1})
            found = [StreamSummary(*row) for row in rows]
            more = len(found) > limit
            found = found[:limit]
            return StreamListing(found, found[-1].stream if more else None)
        rows = await self._all(_STREAMS_WALK, {**params, "budget": WALK_BUDGET})
        matched: list[StreamSummary] = []
        for stream, step, version, position, recorded_at in rows:
            if version is None:
                continue
            matched.append(StreamSummary(stream, version, position, recorded_at))
            if len(matched) == limit:
                # The page is full: the next one starts after this name.
                return StreamListing(matched, stream if step < len(rows) or step == WALK_BUDGET else None)
        if rows and rows[-1][1] >= WALK_BUDGET:
            # The budget ran out before the end of the index: more names may match after it.
            return StreamListing(matched, rows[-1][0])
        return StreamListing(matched, None)

    async def stats(self, window_minutes: int = 60) -> StoreStats:
        """Event and stream counts, and appends per bucket over the last `window_minutes`.

        The window is split into 60 buckets of `window_minutes` seconds each.
        """
        if isinstance(window_minutes, bool) or not isinstance(window_minutes, int) or window_minutes < 1:
            raise ValidationError("minutes", "must be a positive integer")
        bucket = timedelta(seconds=window_minutes * 60 // APPEND_BUCKETS)
        counts = await self._one(_COUNTS, {"event_cap": EVENT_COUNT_CAP, "stream_cap": STREAM_COUNT_CAP})
        assert counts is not None
        rows = await self._all(
            _APPENDS, {"bucket": bucket, "buckets": APPEND_BUCKETS, "scan_cap": APPEND_SCAN_CAP}
        )
        events, events_exact, streams, streams_exact, last_position, last_recorded_at, follow_from = counts
        return StoreStats(
            events=int(events),
            events_exact=bool(events_exact),
            streams=int(streams),
            streams_exact=bool(streams_exact),
            last_position=int(last_position),
            last_recorded_at=last_recorded_at,
            follow_from=int(follow_from),
            bucket_seconds=int(bucket.total_seconds()),
            buckets=[AppendBucket(start, int(n)) for start, n, _, _ in rows],
            complete_since=rows[0][2],
            events_last_minute=int(rows[0][3]),
        )

    async def _all(self, query: bytes, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with self.database.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    async def _one(self, query: bytes, params: dict[str, Any]) -> tuple[Any, ...] | None:
        rows = await self._all(query, params)
        return rows[0] if rows else None
