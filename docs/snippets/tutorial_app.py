"""The tutorial, end to end: the HTTP app and a projection worker on one PostgreSQL database.

Run it with `.venv/bin/python docs/snippets/tutorial_app.py`: it uses `ILJI_DATABASE_URL`, or
Ilji's embedded PostgreSQL when that is not set.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from tutorial_http import command_routes, query_routes
from tutorial_projection import Shelf

from ilji import PostgresEventStore, Settings, load_settings, open_runtime
from ilji.projections import Worker


# --8<-- [start:app]
def create_app(store: PostgresEventStore) -> FastAPI:
    app = FastAPI(title="Library")
    app.include_router(command_routes(store))
    app.include_router(query_routes(store))
    return app


async def main(settings: Settings | None = None) -> None:
    # The store, with the database migrated (ILJI_DATABASE_URL, or embedded).
    async with open_runtime(settings or load_settings()) as runtime:
        worker = Worker(runtime.store, [Shelf()], poll_interval=0.1)
        working = asyncio.create_task(worker.run())
        # HTTP requests to the app, without opening a socket.
        app = httpx.ASGITransport(app=create_app(runtime.store))
        try:
            async with httpx.AsyncClient(
                transport=app,
                base_url="http://library",
            ) as client:
                await visit(client)
        finally:
            await worker.stop()
            await working


# --8<-- [end:app]


# --8<-- [start:visit]
async def visit(client: httpx.AsyncClient) -> None:
    book = f"/books/dune-{uuid.uuid4().hex[:6]}"  # a new book at every run
    jiwoo, mina = {"member": "jiwoo"}, {"member": "mina"}
    (await client.put(book, json={"title": "Dune"})).raise_for_status()
    (await client.post(f"{book}/loan", json=jiwoo)).raise_for_status()

    refused = await client.post(f"{book}/loan", json=mina)
    print(refused.status_code, refused.json()["detail"])
    assert refused.status_code == 409

    (await client.post(f"{book}/return", json=jiwoo)).raise_for_status()
    lent = await client.post(f"{book}/loan", json=mina)
    print(lent.json())
    assert lent.json()["version"] == 4

    shown = await client.get(book, params={"after": lent.json()["position"]})
    print(shown.json())
    assert shown.json() == {"title": "Dune", "borrower": "mina", "times_lent": 2}


# --8<-- [end:visit]


# --8<-- [start:production]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Opened once per server process, closed on shutdown. Migrations are a release step
    # (`ilji migrate`), not something every replica does as it starts.
    async with open_runtime(load_settings(), schema="check") as runtime:
        app.include_router(command_routes(runtime.store))
        app.include_router(query_routes(runtime.store))
        yield


# For `uvicorn tutorial_app:app`: the same routes as create_app, on a store of its own.
app = FastAPI(title="Library", lifespan=lifespan)
# --8<-- [end:production]


if __name__ == "__main__":
    asyncio.run(main())
