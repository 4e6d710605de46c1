"""Rebuilds without downtime: build version N+1 beside version N, then cut over atomically.

Version N keeps serving (its runners keep following the log) while version N+1 reads the log
from position 0 into its own tables. When every partition of N+1 follows live, `cutover`
switches `ilji.projections.active_version` in one transaction, at a moment when N+1 has dealt
with at least everything N had: readers that look up the active version never see the view
go back in time. Version N's runners then retire; its tables stay until the application
drops them. The error texts of the retired versions (parked events, failed partitions) are
cleared in the same transaction: they may quote data that a rebuild was run to get rid of.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ilji.projections import sql
from ilji.store.postgres import PostgresEventStore

log = logging.getLogger(__name__)

_LOCK = sql.load("cutover_lock")
_FREEZE = sql.load("cutover_freeze")
_TARGET = sql.load("cutover_target")
_FLIP = sql.load("cutover_flip")
_FORGET_ERRORS = sql.load("cutover_forget_errors")


async def cutover(
    store: PostgresEventStore,
    name: str,
    from_version: int,
    to_version: int,
    partitions: int,
    *,
    wait: float = 2.0,
) -> bool:
    """Make `to_version` the active version if it has caught up with `from_version`.

    Waits up to `wait` seconds (holding the serving version still) for the new version to
    reach the serving version's checkpoint; returns False, changing nothing, if it does not.
    """
    async with store.database.transaction() as conn:
        # Never wait long for a lock: the serving version's owner commits every batch, and a
        # cutover can simply be tried again.
        await conn.execute("SET LOCAL lock_timeout = '2s'")
        cur = await conn.execute(_LOCK, {"name": name})
        row = await cur.fetchone()
        if row is None or row[0] != from_version:
            return False
        cur = await conn.execute(_FREEZE, {"name": name, "version": from_version})
        frozen = await cur.fetchone()
        serving = int(frozen[0]) if frozen else 0
        deadline = time.monotonic() + wait
        while True:
            cur = await conn.execute(_TARGET, {"name": name, "version": to_version})
            target = await cur.fetchone()
            assert target is not None
            count, reached, healthy = target
            if count == partitions and healthy and reached >= serving:
                break
            if not healthy or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        cur = await conn.execute(_FLIP, {"name": name, "version": to_version, "from_version": from_version})
        if cur.rowcount != 1:
            return False
        await conn.execute(_FORGET_ERRORS, {"name": name, "version": to_version})
    log.info(
        "rebuild cut over",
        extra={
            "projection": name,
            "from_version": from_version,
            "to_version": to_version,
            "position": serving,
        },
    )
    return True
