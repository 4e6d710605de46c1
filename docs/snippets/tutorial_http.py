"""The tutorial's HTTP API: commands go to the decider, queries to the read model."""

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from tutorial_domain import AddBook, BookCommand, LendBook, ReturnBook, book_type
from tutorial_projection import Shelf, ShelfRow, find_book

from ilji import PostgresEventStore
from ilji.app import CommandRejected, Repository
from ilji.projections import WaitTimeout, wait_for_position


class Title(BaseModel):
    title: str


class Member(BaseModel):
    member: str


# --8<-- [start:commands]
def command_routes(store: PostgresEventStore) -> APIRouter:
    books = Repository(store, book_type)
    api = APIRouter(prefix="/books")

    async def run(book_id: str, command: BookCommand) -> dict[str, int]:
        try:
            # Load, decide, append; decided again if another request won a race.
            result = await books.handle(book_id, command)
        except CommandRejected as refused:
            problem = {"code": refused.code, "message": str(refused)}
            raise HTTPException(409, problem) from refused
        # Where the events are in the global log: a client that waits for it
        # before reading sees its own change (below).
        position = result.append.last_position if result.append else 0
        return {"version": result.version, "position": position}

    @api.put("/{book_id}")
    async def add(book_id: str, body: Title) -> dict[str, int]:
        return await run(book_id, AddBook(body.title))

    @api.post("/{book_id}/loan")
    async def lend(book_id: str, body: Member) -> dict[str, int]:
        return await run(book_id, LendBook(body.member))

    @api.post("/{book_id}/return")
    async def give_back(book_id: str, body: Member) -> dict[str, int]:
        return await run(book_id, ReturnBook(body.member))

    return api


# --8<-- [end:commands]


# --8<-- [start:queries]
def query_routes(store: PostgresEventStore) -> APIRouter:
    api = APIRouter(prefix="/books")

    @api.get("/{book_id}")
    async def show(book_id: str, after: int = 0) -> ShelfRow:
        """The book on the shelf, once the read model includes `after`."""
        try:
            await wait_for_position(store, Shelf.name, after, timeout=5.0)
        except WaitTimeout as late:
            raise HTTPException(504, "the read model is behind") from late
        book = await find_book(store, book_id)
        if book is None:
            raise HTTPException(404, "no such book")
        return book

    return api


# --8<-- [end:queries]
