-- Sent after appends commit, never inside an append transaction (a NOTIFY holds a
-- cluster-wide lock from the NOTIFY until commit).
NOTIFY ilji_events
