"""Stream lifecycle on PostgreSQL: soft delete, truncation, retention and scavenging.

The rules and their decisions are in `ilji.store.lifecycle` (shared with the in-memory store);
this module reads and saves them in `ilji.stream_rules` and `ilji.category_retention`, each
change as an audited admin transaction (`ilji.store.admin`). See docs/en/lifecycle.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ilji.domain.errors import ValidationError
from ilji.domain.events import NewEvent
from ilji.domain.validation import validate_stream_name
from ilji.store import sql
from ilji.store.admin import AdminTransactions
from ilji.store.audit import Actor, AdminResult
from ilji.store.database import Connection, Database
from ilji.store.lifecycle import (
    EVENTS_SCAVENGED,
    LifecyclePlan,
    Retention,
    StreamLifecycle,
    check_retention,
    lifecycle_category_name,
    lifecycle_stream_name,
    plan_delete,
    plan_restore,
    plan_truncate,
    retention_event,
)

_STREAM_LIFECYCLE = sql.load("stream_lifecycle")
_RULES_SAVE = sql.load("stream_rules_save")
_RULES_DROP = sql.load("stream_rules_drop")
_RETENTION_GET = sql.load("retention_get")
_RETENTION_SAVE = sql.load("retention_save")
_RETENTION_DROP = sql.load("retention_drop")
_SCAVENGE_ALLOW = sql.load("scavenge_allow")
_SCAVENGE_BATCH = sql.load("scavenge_batch")


class LifecycleAdmin:
    """The lifecycle rules of one database's streams and categories, changed with audit."""

    def __init__(self, database: Database, admin: AdminTransactions) -> None:
        self.database = database
        self._admin = admin

    async def stream_lifecycle(self, stream: str) -> StreamLifecycle:
        """A stream's version and lifecycle rules (soft delete, truncation)."""
        validate_stream_name(stream, allow_system=True)
        async with self.database.connection() as conn:
            return await _lifecycle(conn, stream)

    async def _change_stream(
        self,
        action: str,
        stream: str,
        parameters: dict[str, Any],
        plan: Callable[[StreamLifecycle], LifecyclePlan],
        actor: Actor | None,
    ) -> StreamLifecycle:
        """Apply the change `plan` decides from the stream's current state, as `action`."""
        lifecycle_stream_name(stream)

        async def body(conn: Connection) -> AdminResult[StreamLifecycle]:
            change = plan(await _lifecycle(conn, stream))
            if change.event is None:
                return AdminResult(change.state, outcome="unchanged")
            new = change.state
            if new.has_rule:
                params = {
                    "stream": stream,
                    "truncate_before": new.truncate_before,
                    "deleted_version": new.deleted_version,
                }
                await conn.execute(_RULES_SAVE, params)
            else:
                await conn.execute(_RULES_DROP, {"stream": stream})
            return AdminResult(await _lifecycle(conn, stream), [change.event])

        return await self._admin.audited(actor or Actor.process(), action, stream, parameters, body)

    async def delete_stream(self, stream: str, actor: Actor | None) -> StreamLifecycle:
        """See `PostgresEventStore.delete_stream`."""
        return await self._change_stream("stream.delete", stream, {}, plan_delete, actor)

    async def restore_stream(self, stream: str, actor: Actor | None) -> StreamLifecycle:
        """See `PostgresEventStore.restore_stream`."""
        return await self._change_stream("stream.restore", stream, {}, plan_restore, actor)

    async def truncate_stream(self, stream: str, before: int, actor: Actor | None) -> StreamLifecycle:
        """See `PostgresEventStore.truncate_stream`."""
        return await self._change_stream(
            "stream.truncate", stream, {"before": before}, lambda s: plan_truncate(s, before), actor
        )

    async def retention(self, category: str) -> Retention | None:
        """A category's retention rule, or None."""
        lifecycle_category_name(category)
        async with self.database.connection() as conn:
            return await _retention(conn, category)

    async def set_retention(
        self, category: str, max_age_seconds: int | None, max_count: int | None, actor: Actor | None
    ) -> Retention:
        """See `PostgresEventStore.set_retention`."""
        lifecycle_category_name(category)
        check_retention(max_age_seconds, max_count)
        new = Retention(
            category,
            timedelta(seconds=max_age_seconds) if max_age_seconds is not None else None,
            max_count,
        )

        async def body(conn: Connection) -> AdminResult[Retention]:
            event = retention_event(await _retention(conn, category), new, category)
            if event is None:
                return AdminResult(new, outcome="unchanged")
            params = {"category": category, "max_age_seconds": max_age_seconds, "max_count": max_count}
            await conn.execute(_RETENTION_SAVE, params)
            return AdminResult(new, [event])

        parameters = {"max_age_seconds": max_age_seconds, "max_count": max_count}
        return await self._admin.audited(
            actor or Actor.process(), "retention.set", category, parameters, body
        )

    async def clear_retention(self, category: str, actor: Actor | None) -> None:
        """See `PostgresEventStore.clear_retention`."""
        lifecycle_category_name(category)

        async def body(conn: Connection) -> AdminResult[None]:
            event = retention_event(await _retention(conn, category), None, category)
            if event is None:
                return AdminResult(None, outcome="unchanged")
            await conn.execute(_RETENTION_DROP, {"category": category})
            return AdminResult(None, [event])

        await self._admin.audited(actor or Actor.process(), "retention.clear", category, {}, body)

    async def scavenge_batch(self, limit: int, actor: Actor | None) -> int:
        """See `PostgresEventStore.scavenge_batch`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise ValidationError("limit", "must be an integer from 1 to 100000")

        async def body(conn: Connection) -> AdminResult[int]:
            await conn.execute(_SCAVENGE_ALLOW)
            cur = await conn.execute(_SCAVENGE_BATCH, {"limit": limit})
            streams: dict[str, int] = {}
            for (stream,) in await cur.fetchall():
                streams[stream] = streams.get(stream, 0) + 1
            removed = sum(streams.values())
            if not removed:
                return AdminResult(0, outcome="unchanged")
            return AdminResult(removed, [NewEvent(EVENTS_SCAVENGED, {"events": removed, "streams": streams})])

        return await self._admin.audited(
            actor or Actor.process(), "streams.scavenge", "ilji.events", {"limit": limit}, body
        )


async def _lifecycle(conn: Connection, stream: str) -> StreamLifecycle:
    cur = await conn.execute(_STREAM_LIFECYCLE, {"stream": stream})
    row = await cur.fetchone()
    assert row is not None
    return StreamLifecycle(stream, *row)


async def _retention(conn: Connection, category: str) -> Retention | None:
    cur = await conn.execute(_RETENTION_GET, {"category": category})
    row = await cur.fetchone()
    if row is None:
        return None
    _name, seconds, max_count = row
    return Retention(category, timedelta(seconds=seconds) if seconds is not None else None, max_count)
