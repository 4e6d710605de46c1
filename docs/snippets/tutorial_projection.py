"""The tutorial's read model: one row per book, kept by an `ilji.projections` worker."""

from dataclasses import dataclass

from psycopg import sql
from tutorial_domain import BookAdded, BookLent, BookReturned, events

from ilji import PostgresEventStore, RecordedEvent
from ilji.projections import Connection, Context, Projection


# --8<-- [start:projection]
class Shelf(Projection):
    """Table `shelf_v1`: each book's title, borrower and number of loans."""

    name = "shelf"
    category = "book"  # the streams book-<id>

    async def setup(self, conn: Connection, ctx: Context) -> None:
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (book_id text PRIMARY KEY,"
                " title text NOT NULL, borrower text,"
                " times_lent integer NOT NULL DEFAULT 0)"
            ).format(sql.Identifier(ctx.table("shelf")))
        )

    async def handle(
        self,
        conn: Connection,
        event: RecordedEvent,
        ctx: Context,
    ) -> None:
        book = event.stream.removeprefix("book-")
        match events.decode(event):
            case BookAdded(title):
                query = "INSERT INTO {} (book_id, title) VALUES (%s, %s)"
                params = [book, title]
            case BookLent(member):
                query = (
                    "UPDATE {} SET borrower = %s,"  # who has it now
                    " times_lent = times_lent + 1 WHERE book_id = %s"
                )
                params = [member, book]
            case BookReturned():
                query = "UPDATE {} SET borrower = NULL WHERE book_id = %s"
                params = [book]
            case _:
                return  # an event type this version does not show
        table = sql.Identifier(ctx.table("shelf"))
        await conn.execute(sql.SQL(query).format(table), params)


# --8<-- [end:projection]


# --8<-- [start:query]
@dataclass(frozen=True)
class ShelfRow:
    title: str
    borrower: str | None
    times_lent: int


async def find_book(store: PostgresEventStore, book_id: str) -> ShelfRow | None:
    """One book as the read model shows it (from the version that serves)."""
    async with store.database.connection() as conn:
        cur = await conn.execute(
            "SELECT active_version FROM ilji.projections WHERE name = %s",
            [Shelf.name],
        )
        serving = await cur.fetchone()
        if serving is None:
            return None  # no worker has started the projection yet
        table = sql.Identifier(f"{Shelf.name}_v{serving[0]}")
        query = "SELECT title, borrower, times_lent FROM {} WHERE book_id = %s"
        cur = await conn.execute(sql.SQL(query).format(table), [book_id])
        row = await cur.fetchone()
    return ShelfRow(*row) if row else None


# --8<-- [end:query]
