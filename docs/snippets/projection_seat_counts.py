"""A projection on PostgreSQL: free seats per concert, kept by an `ilji.projections` worker."""

import asyncio
import uuid

from psycopg import sql

from ilji import NO_STREAM, NewEvent, PostgresEventStore, RecordedEvent, Settings, load_settings, open_runtime
from ilji.projections import Connection, Context, Projection, Worker, wait_for_position


# --8<-- [start:projection]
class SeatCounts(Projection):
    name = "seat_counts"  # [a-z][a-z0-9_]*, unique in the database
    version = 1  # raise it to rebuild (see below)
    category = "concert"  # only streams concert-...; None: the whole log
    types = ("SeatsAdded", "SeatsReserved")  # None: every type

    async def setup(self, conn: Connection, ctx: Context) -> None:
        # Idempotent: called whenever a worker starts owning a partition.
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}"  # seat_counts_v1
                " (concert text PRIMARY KEY, free integer NOT NULL)"
            ).format(sql.Identifier(ctx.table("seat_counts")))
        )

    async def handle(
        self,
        conn: Connection,
        event: RecordedEvent,
        ctx: Context,
    ) -> None:
        added = event.type == "SeatsAdded"
        delta = event.data["seats"] if added else -event.data["quantity"]
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} AS s (concert, free) VALUES (%s, %s)"
                " ON CONFLICT (concert)"  # a row already there: add to it
                " DO UPDATE SET free = s.free + EXCLUDED.free"
            ).format(sql.Identifier(ctx.table("seat_counts"))),
            (event.stream, delta),
        )


# --8<-- [end:projection]


# --8<-- [start:wait]
async def reserve(
    store: PostgresEventStore,
    concert: str,
    seats: int,
    expected_version: int,
) -> None:
    """Append a reservation; return once `seat_counts` shows it."""
    events = [NewEvent("SeatsReserved", {"quantity": seats})]
    result = await store.append(concert, events, expected_version)
    position = result.last_position  # where the append is in the global log
    await wait_for_position(store, "seat_counts", position, timeout=5.0)


# --8<-- [end:wait]


async def free_seats(store: PostgresEventStore, concert: str) -> int:
    """Query the read model (version 1's table; see "Rebuild without downtime")."""
    async with store.database.connection() as conn:
        cur = await conn.execute("SELECT free FROM seat_counts_v1 WHERE concert = %s", (concert,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def main(settings: Settings | None = None) -> None:
    async with open_runtime(settings or load_settings()) as runtime:
        store = runtime.store
        worker = Worker(store, [SeatCounts()], poll_interval=0.1)
        running = asyncio.create_task(worker.run())
        try:
            concert = f"concert-{uuid.uuid4().hex[:8]}"
            await store.append(concert, [NewEvent("SeatsAdded", {"seats": 10})], NO_STREAM)
            await reserve(store, concert, 3, expected_version=1)
            print(await free_seats(store, concert))  # 7, at once: reserve() waited for the view
            assert await free_seats(store, concert) == 7
        finally:
            await worker.stop()
            await running


if __name__ == "__main__":
    asyncio.run(main())
