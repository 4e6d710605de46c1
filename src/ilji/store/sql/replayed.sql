-- Has this server finished the transaction that wrote `position` (position >> 12 is its id)?
-- On a hot standby, "finished" means replayed: its snapshot holds every transaction it has not
-- seen end as running, so this turns true only once the standby's reads include that append.
-- An id beyond the server's newest is not finished (it is at or above the snapshot's xmax).
SELECT pg_visible_in_snapshot((%(position)s::bigint >> 12)::text::xid8, pg_current_snapshot())
