"""A projection with `ilji.projections`: seats left per concert, in a table a worker keeps."""

import asyncio
import uuid

from psycopg import sql

from ilji import NO_STREAM, NewEvent, PostgresEventStore, RecordedEvent, Settings, load_settings, open_runtime
from ilji.projections import (
    Connection,
    Context,
    Projection,
    Worker,
    rebuild_progress,
    request_rebuild,
    wait_for_position,
)

# --8<-- [start:view]
#: What each event does to the seats left: (the field with the number, its sign).
CHANGES = {
    "ConcertScheduled": ("seats", 1),
    "SeatsReserved": ("quantity", -1),
    "ReservationCancelled": ("quantity", 1),
}


class SeatsLeft(Projection):
    """Seats left per concert: a view derived only from events."""

    name = "seats_left"
    category = "concert"
    types = tuple(CHANGES)

    async def setup(self, conn: Connection, ctx: Context) -> None:
        table = sql.Identifier(ctx.table("seats_left"))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}"  # seats_left_v1 (v2 in a rebuild)
                " (concert text PRIMARY KEY, seats integer NOT NULL)"
            ).format(table)
        )

    async def handle(
        self,
        conn: Connection,
        event: RecordedEvent,
        ctx: Context,
    ) -> None:
        # In the transaction that also moves the checkpoint: exactly once.
        field, sign = CHANGES[event.type]
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} AS t VALUES (%s, %s) ON CONFLICT (concert)"
                " DO UPDATE SET seats = t.seats + EXCLUDED.seats"
            ).format(sql.Identifier(ctx.table("seats_left"))),
            (event.stream, sign * event.data[field]),
        )


async def seats_left(store: PostgresEventStore, concert: str) -> int:
    """The query side: read the table of the version that serves now."""
    async with store.database.connection() as conn:
        cur = await conn.execute(
            "SELECT active_version FROM ilji.projections WHERE name = %s",
            [SeatsLeft.name],
        )
        [(version,)] = await cur.fetchall()
        table = sql.Identifier(f"seats_left_v{version}")
        query = sql.SQL("SELECT seats FROM {} WHERE concert = %s")
        cur = await conn.execute(query.format(table), (concert,))
        [(seats,)] = await cur.fetchall()
    return int(seats)


# --8<-- [end:view]


# --8<-- [start:run]
async def main(settings: Settings | None = None) -> None:
    async with open_runtime(settings or load_settings()) as runtime:
        store = runtime.store
        # In production a process of its own: `ilji worker -p app.views:SeatsLeft`
        worker = Worker(
            store,
            [SeatsLeft()],
            poll_interval=0.1,
            control_interval=0.1,
        )
        working = asyncio.create_task(worker.run())
        try:
            concert = f"concert-{uuid.uuid4().hex[:8]}"
            created = NewEvent("ConcertScheduled", {"seats": 10})
            await store.append(concert, [created], NO_STREAM)
            reserved = NewEvent("SeatsReserved", {"quantity": 3})
            await store.append(concert, [reserved], 1)
            cancelled = NewEvent("ReservationCancelled", {"quantity": 1})
            last = await store.append(concert, [cancelled], 2)

            # The view is eventually consistent: wait until it shows our append.
            await wait_for_position(store, "seats_left", last.last_position)
            print(await seats_left(store, concert))  # 8
            assert await seats_left(store, concert) == 8

            # A complete rebuild: version 2 replays the log from position 0 into
            # its own table while version 1 serves; then version 2 serves.
            rebuilding = await request_rebuild(store, "seats_left")
            progress = rebuild_progress(store, "seats_left", interval=0.05)
            async for step in progress:  # until version 2 serves
                assert step.version == rebuilding
            assert await seats_left(store, concert) == 8  # from seats_left_v2
        finally:
            await worker.stop()
            await working


# --8<-- [end:run]

if __name__ == "__main__":
    asyncio.run(main())
