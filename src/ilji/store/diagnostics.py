"""What an operator asks a PostgreSQL event store: is it up, what does it hold, how long will
its transaction ids last, and has a standby caught up with a position."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ilji.domain.errors import StoreUnavailable, ValidationError
from ilji.domain.events import TRANSACTION_ID_LIMIT
from ilji.domain.validation import validate_after
from ilji.store import sql
from ilji.store.database import Database

_OLDEST_TRANSACTION = sql.load("oldest_transaction")
_NEXT_TRANSACTION_ID = sql.load("next_transaction_id")
_INFO = sql.load("info")
_REPLAYED = sql.load("replayed")

#: How long a read with `at_least` waits for a standby to replay that position by default.
DEFAULT_AT_LEAST_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """A summary of what the store holds, for `ilji info` and the server."""

    streams: int
    events: int
    last_position: int
    visible_bound: int
    server_version: str
    database: str
    #: Two-phase transactions waiting for COMMIT/ROLLBACK PREPARED (they hold the global log).
    prepared_transactions: int


class Diagnostics:
    """Health, counts and replication progress of one database.

    `primary`: the primary's diagnostics when `database` is a hot standby (a reader view).
    """

    def __init__(
        self,
        database: Database,
        *,
        at_least_timeout: float = DEFAULT_AT_LEAST_TIMEOUT,
        primary: Diagnostics | None = None,
    ) -> None:
        self.database = database
        #: Seconds `wait_replayed` waits by default.
        self.at_least_timeout = at_least_timeout
        self._primary = primary

    async def wait_replayed(self, position: int, within: float | None = None) -> None:
        """See `PostgresEventStore.wait_replayed`."""
        validate_after(position, "at_least")
        if await self.finished(position):
            return
        # Not here yet. Worth waiting for only if the primary has it (this may be the primary).
        primary = self._primary
        if primary is None or not await primary.finished(position):
            raise ValidationError("at_least", f"no completed append has position {position}")
        limit = self.at_least_timeout if within is None else within
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        delay = 0.002
        while not await self.finished(position):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StoreUnavailable(
                    f"the database read from has not caught up with position {position} "
                    f"within {limit:g} s (replication lag): retry the read"
                )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)

    async def finished(self, position: int) -> bool:
        """Has this server finished (on a standby: replayed) the append at `position`?"""
        async with self.database.connection() as conn:
            cur = await conn.execute(_REPLAYED, {"position": position})
            row = await cur.fetchone()
        return bool(row is not None and row[0])

    async def oldest_transaction_age(self) -> float:
        """See `PostgresEventStore.oldest_transaction_age`."""
        row = await self._one_row(_OLDEST_TRANSACTION)
        return float(row[0])

    async def transaction_ids_left(self) -> int:
        """See `PostgresEventStore.transaction_ids_left`."""
        row = await self._one_row(_NEXT_TRANSACTION_ID)
        return TRANSACTION_ID_LIMIT - int(row[0])

    async def info(self) -> StoreInfo:
        """Counts and positions for `ilji info`."""
        return StoreInfo(*await self._one_row(_INFO))

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers within about two seconds."""
        async with self.database.connection(timeout=2.0) as conn:
            await conn.execute("SELECT 1")

    async def _one_row(self, query: bytes) -> tuple[Any, ...]:
        """The row of a diagnostic query that always returns one."""
        async with self.database.connection() as conn:
            cur = await conn.execute(query)
            row = await cur.fetchone()
        assert row is not None
        return tuple(row)
