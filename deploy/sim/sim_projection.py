"""The projection the cluster rehearsal runs: it notices an event applied twice or skipped.

`SimAudit` keeps one row per applied event in a table whose primary key is the event id. A
second application of an event does not fail the batch (that would stop the projection and
hide how often it happened): its insert hits the key, `ON CONFLICT DO NOTHING` drops it, and
the conflicting ids go to a duplicates table *in the same transaction*. So a row in
`sim_duplicates_v1` exists exactly when a batch whose events were already applied committed
again, which is what "applied twice" means for a read model. Skipped events are found by the
rehearsal afterwards: ids in the log with no row here.

Loaded by `ilji worker -p sim_projection:SimAudit` with `deploy/sim` on PYTHONPATH.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from ilji import RecordedEvent
from ilji.projections import Context, Projection
from ilji.projections.projection import Connection


class SimAudit(Projection):
    """Records each applied event once (primary key on its id); counts re-applications."""

    name = "sim_audit"
    # Several partitions, so that two workers really share the work and a killed worker's
    # partitions move to the other one while appends keep coming.
    partitions = 4
    # Small batches: more commits per second, so kills land between and inside many of them.
    batch_size = 50
    # A failing batch must be seen, not parked and forgotten.
    on_poison = "stop"
    max_attempts = 3
    retry_delay = 0.05
    max_retry_delay = 0.2

    async def setup(self, conn: Connection, ctx: Context) -> None:
        """Create the audit and duplicates tables of this version (idempotent)."""
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (event_id uuid PRIMARY KEY, position bigint NOT NULL,"
                " stream text NOT NULL, version bigint NOT NULL, partition integer NOT NULL,"
                " worker text NOT NULL, token bigint NOT NULL, seq bigserial)"
            ).format(sql.Identifier(ctx.table("sim_applied")))
        )
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (event_id uuid NOT NULL, worker text NOT NULL,"
                " token bigint NOT NULL, at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(ctx.table("sim_duplicates")))
        )

    async def apply(self, conn: Connection, events: Sequence[RecordedEvent], ctx: Context) -> None:
        """Insert the batch's ids; ids already present are recorded as duplicates."""
        ids = [e.id for e in events]
        # One statement for the batch; RETURNING tells which ids were new. The runner commits
        # this together with the checkpoint, so either both happen or neither does.
        cur = await conn.execute(
            sql.SQL(
                "INSERT INTO {} (event_id, position, stream, version, partition, worker, token)"
                " SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bigint[],"
                " %s::integer[], %s::text[], %s::bigint[])"
                " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
            ).format(sql.Identifier(ctx.table("sim_applied"))),
            (
                ids,
                [e.position for e in events],
                [e.stream for e in events],
                [e.version for e in events],
                [ctx.partition] * len(events),
                [ctx.worker_id] * len(events),
                [ctx.fencing_token] * len(events),
            ),
        )
        inserted = {row[0] for row in await cur.fetchall()}
        again = [i for i in ids if i not in inserted]
        if again:
            async with conn.cursor() as dup:
                await dup.executemany(
                    sql.SQL("INSERT INTO {} (event_id, worker, token) VALUES (%s, %s, %s)").format(
                        sql.Identifier(ctx.table("sim_duplicates"))
                    ),
                    [(i, ctx.worker_id, ctx.fencing_token) for i in again],
                )
