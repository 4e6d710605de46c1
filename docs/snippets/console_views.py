"""Time travel in the console for your own aggregate type: register a domain view.

Uses the tutorial's library domain. Run it with `.venv/bin/python docs/snippets/console_views.py`
(it uses `ILJI_DATABASE_URL`, or Ilji's embedded PostgreSQL when that is not set).
"""

import asyncio
import uuid

import httpx
from tutorial_domain import AddBook, Book, LendBook, book_type

from ilji import Settings, load_settings, open_runtime
from ilji.app import DomainView, DomainViews, Repository
from ilji.server import create_app


# --8<-- [start:views]
def show(book: Book) -> dict[str, object]:  # optional: what a reader should see
    return {"title": book.title, "borrower": book.borrower, "on_shelf": book.borrower is None}


views = DomainViews([DomainView(book_type, describe=show)])
# --8<-- [end:views]


async def main(settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    async with open_runtime(settings) as runtime:
        books = Repository(runtime.store, book_type)
        book = f"dune-{uuid.uuid4().hex[:6]}"
        await books.handle(book, AddBook("Dune"))
        await books.handle(book, LendBook("jiwoo"))
        # --8<-- [start:serve]
        app = create_app(settings, store=runtime.store, views=views)  # what `ilji serve` runs
        # --8<-- [end:serve]
        transport = httpx.ASGITransport(app=app)
        # Without tokens the server answers loopback host names only (against DNS rebinding).
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            page = (await client.get(f"/v1/states/{book_type.stream(book)}")).json()
    for step in page["states"]:
        print(step["event"]["version"], step["event"]["type"], step["state"], step["changes"])
    last = page["states"][-1]
    assert last["state"] == {"title": "Dune", "borrower": "jiwoo", "on_shelf": False}
    assert {tuple(c["path"]) for c in last["changes"]} == {("borrower",), ("on_shelf",)}


if __name__ == "__main__":
    asyncio.run(main())
