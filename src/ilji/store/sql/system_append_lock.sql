-- Serialises Ilji's own appends and admin actions (rare), never ordinary appends. The key is
-- an arbitrary constant naming this lock (see MIGRATION_LOCK_KEY for the other one).
SELECT pg_advisory_xact_lock(286916610)
