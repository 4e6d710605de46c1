-- Sent after appends commit, never inside an append transaction (a NOTIFY holds a
-- cluster-wide lock from the NOTIFY until commit). The same small transaction records the
-- timeline after a promotion (migration 0010), so readers see events written on it at once.
SELECT pg_notify('ilji_events', ''), ilji.note_timeline()
