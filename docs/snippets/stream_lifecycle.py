"""Stream lifecycle: soft delete, appends after a delete, restore, truncate, retention, audit.

Run it with `python docs/snippets/stream_lifecycle.py` (the embedded PostgreSQL, or the one at
ILJI_DATABASE_URL); the docs tests run it on a fresh database.
"""

from __future__ import annotations

import asyncio
import uuid

from ilji import AUDIT_STREAM, Actor, NewEvent, PostgresEventStore, Settings, load_settings, open_runtime


async def versions(store: PostgresEventStore, stream: str) -> list[int]:
    return [e.version for e in await store.read_stream(stream)]


async def main(settings: Settings | None = None) -> None:
    async with open_runtime(settings or load_settings()) as runtime:
        store = runtime.store
        cart = f"cart{uuid.uuid4().hex[:8]}"
        stream = f"{cart}-1"
        # --8<-- [start:delete]
        await store.append(stream, [NewEvent("ItemAdded", {"sku": "tea"}) for _ in range(3)])
        me = Actor(via="python", user="ops-on-call")  # who acts, for $audit

        state = await store.delete_stream(stream, actor=me)
        assert state.deleted and state.deleted_version == 3
        assert await store.read_stream(stream) == []  # hidden from every read...
        assert await store.stream_version(stream) == 3  # ...but stored, and still counted

        await store.restore_stream(stream, actor=me)
        assert await versions(store, stream) == [1, 2, 3]
        # --8<-- [end:delete]

        # --8<-- [start:append-after-delete]
        await store.delete_stream(stream, actor=me)
        await store.append(stream, [NewEvent("CheckedOut", {})], expected_version=3)
        assert await versions(store, stream) == [4]  # back, with the new event only
        await store.restore_stream(stream, actor=me)
        assert await versions(store, stream) == [1, 2, 3, 4]
        # --8<-- [end:append-after-delete]

        # --8<-- [start:truncate]
        await store.truncate_stream(stream, 3, actor=me)  # hide versions 1 and 2
        assert await versions(store, stream) == [3, 4]
        await store.truncate_stream(stream, 1, actor=me)  # show them again
        # --8<-- [end:truncate]

        # --8<-- [start:retention]
        await store.append(f"{cart}-2", [NewEvent("ItemAdded", {}) for _ in range(5)])
        await store.set_retention(cart, max_count=2, max_age_seconds=30 * 24 * 3600, actor=me)
        assert await versions(store, f"{cart}-2") == [4, 5]  # each stream's newest two
        assert await versions(store, stream) == [3, 4]
        await store.clear_retention(cart, actor=me)
        # --8<-- [end:retention]

        # --8<-- [start:audit]
        records = [e.data for e in await store.read_stream(AUDIT_STREAM, limit=1000)]
        mine = [r for r in records if r["target"] in (stream, cart)]
        assert [r["action"] for r in mine] == [
            "stream.delete",
            "stream.restore",
            "stream.delete",
            "stream.restore",
            "stream.truncate",
            "stream.truncate",
            "retention.set",
            "retention.clear",
        ]
        assert mine[0]["actor"] == {"via": "python", "user": "ops-on-call"}
        assert mine[0]["outcome"] == "ok"
        # --8<-- [end:audit]


if __name__ == "__main__":
    asyncio.run(main())
