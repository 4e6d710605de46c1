-- Has this server finished the transaction that wrote `position`? Everything below the visible
-- bound is final; above it, position >> 12 minus the newest timeline's offset (migration 0010)
-- is the writer's transaction id, finished when the current snapshot no longer counts it as
-- running. On a hot standby "finished" means replayed: its snapshot holds every transaction it
-- has not seen end as running, and a position from a timeline it has not replayed yet maps to
-- an id at or beyond the snapshot's xmax, so the answer stays false until it catches up.
SELECT %(position)s::bigint < ilji.visible_bound()
    OR coalesce(pg_visible_in_snapshot(
           (nullif(greatest((%(position)s::bigint >> 12) - ilji.read_offset(), 0), 0))::text::xid8,
           pg_current_snapshot()), false)
