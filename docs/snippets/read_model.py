"""A projection with `ilji.projections`: seats left per conference, in a table a worker keeps."""

import asyncio
import uuid

from psycopg import sql

from ilji import NO_STREAM, NewEvent, PostgresEventStore, RecordedEvent
from ilji.bootstrap import open_runtime
from ilji.projections import (
    Connection,
    Context,
    Projection,
    Worker,
    rebuild_progress,
    request_rebuild,
    wait_for_position,
)
from ilji.settings import Settings, load_settings

#: What each event does to the seats left: (the field with the number, its sign).
CHANGES = {
    "ConferenceCreated": ("seats", 1),
    "SeatsReserved": ("quantity", -1),
    "ReservationCancelled": ("quantity", 1),
}


class SeatsLeft(Projection):
    """Seats left per conference: a query-friendly view derived only from events."""

    name = "seats_left"
    category = "conference"
    types = tuple(CHANGES)

    async def setup(self, conn: Connection, ctx: Context) -> None:
        table = sql.Identifier(ctx.table("seats_left"))  # seats_left_v1, or _v2 during a rebuild
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (conference text PRIMARY KEY, seats integer NOT NULL)"
            ).format(table)
        )

    async def handle(self, conn: Connection, event: RecordedEvent, ctx: Context) -> None:
        # Runs in the transaction that also moves this projection's checkpoint: exactly once.
        field, sign = CHANGES[event.type]
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} AS t VALUES (%s, %s)"
                " ON CONFLICT (conference) DO UPDATE SET seats = t.seats + EXCLUDED.seats"
            ).format(sql.Identifier(ctx.table("seats_left"))),
            (event.stream, sign * event.data[field]),
        )


async def seats_left(store: PostgresEventStore, conference: str) -> int:
    """The query side: read the table of the version that serves now."""
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT active_version FROM ilji.projections WHERE name = 'seats_left'")
        [(version,)] = await cur.fetchall()
        table = sql.Identifier(f"seats_left_v{version}")
        cur = await conn.execute(
            sql.SQL("SELECT seats FROM {} WHERE conference = %s").format(table), (conference,)
        )
        [(seats,)] = await cur.fetchall()
    return int(seats)


async def main(settings: Settings | None = None) -> None:
    async with open_runtime(settings or load_settings()) as runtime:
        store = runtime.store
        worker = Worker(store, [SeatsLeft()], poll_interval=0.1, control_interval=0.1)
        working = asyncio.create_task(worker.run())  # in production: `ilji worker -p module:SeatsLeft`
        try:
            conference = f"conference-{uuid.uuid4().hex[:8]}"
            await store.append(conference, [NewEvent("ConferenceCreated", {"seats": 10})], NO_STREAM)
            await store.append(conference, [NewEvent("SeatsReserved", {"quantity": 3})], 1)
            last = await store.append(conference, [NewEvent("ReservationCancelled", {"quantity": 1})], 2)

            # The view is eventually consistent: wait until it has applied our last event.
            await wait_for_position(store, "seats_left", last.last_position)
            print(await seats_left(store, conference))  # 8
            assert await seats_left(store, conference) == 8

            # A complete rebuild: version 2 replays the log from position 0 into its own table
            # while version 1 keeps serving, then the projection switches to it.
            rebuilding = await request_rebuild(store, "seats_left")
            async for progress in rebuild_progress(store, "seats_left", interval=0.05):
                assert progress.version == rebuilding
            assert await seats_left(store, conference) == 8  # the same answer, from seats_left_v2
        finally:
            await worker.stop()
            await working


if __name__ == "__main__":
    asyncio.run(main())
