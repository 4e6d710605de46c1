"""What one server app holds while it runs, typed: `ServerState`, and the one way to reach it.

Every route, dependency and middleware that needs the store, the settings, the tokens or the
metrics asks `state(request)` (or takes a `State` parameter, the same through FastAPI's
`Depends`), instead of reading untyped attributes of Starlette's `app.state`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from ilji.domain.errors import StoreUnavailable

if TYPE_CHECKING:
    # Types only: `auth` imports this module, and `ilji token` imports `auth` without
    # wanting the store or the server's other modules loaded.
    from ilji.app.time_travel import DomainViews
    from ilji.server.auth import Tokens
    from ilji.server.metrics import Metrics
    from ilji.server.sse import SseSlots
    from ilji.settings import Settings
    from ilji.store.catalog import Catalog
    from ilji.store.postgres import PostgresEventStore


class Drain:
    """Set when the server begins to shut down: /readyz fails and SSE streams end cleanly.

    `start()` may be called from a signal handler, so it only schedules the change on the
    app's event loop.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop the app runs on."""
        self._loop = loop

    def start(self) -> None:
        """Begin draining (safe from a signal handler or another thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.event.set)


@dataclass(slots=True)
class ServerState:
    """Everything a server app shares between its requests (one per app, built by `create_app`)."""

    settings: Settings
    tokens: Tokens
    metrics: Metrics
    drain: Drain
    sse_slots: SseSlots
    #: The domain views the console's time travel shows.
    views: DomainViews
    #: The store served, once the app has started (or from the start, when given to `create_app`).
    served: PostgresEventStore | None = None
    _catalog: Catalog | None = field(default=None, repr=False)

    @property
    def store(self) -> PostgresEventStore:
        """The store the app serves; `StoreUnavailable` before the app has started."""
        if self.served is None:
            raise StoreUnavailable("the server has not opened its store yet")
        return self.served

    @property
    def catalog(self) -> Catalog:
        """The stream catalog of the store reads come from (a hot standby when configured)."""
        from ilji.store.catalog import Catalog  # see the imports above

        reader = self.store.reader.database
        if self._catalog is None or self._catalog.database is not reader:
            self._catalog = Catalog(reader)
        return self._catalog


def state(request: Request) -> ServerState:
    """The state of the app serving `request` (`create_app` puts it in Starlette's `app.state`)."""
    found: ServerState = request.app.state.server
    return found


async def current_state(request: Request) -> ServerState:
    """`state(request)` as a FastAPI dependency (async: FastAPI runs sync ones in a thread)."""
    return state(request)


#: A handler parameter that receives the app's `ServerState`.
State = Annotated[ServerState, Depends(current_state)]
