-- Cutover, step 2: lock the serving version's checkpoint rows. Their owners' next commit
-- (advance.sql updates these rows) now waits until this transaction ends, so the serving
-- version cannot move ahead while we compare; the version being built keeps moving.
-- (FOR UPDATE cannot be combined with an aggregate, hence the subquery.)
SELECT coalesce(max(position), 0)
FROM (
    SELECT position FROM ilji.projection_checkpoints
    WHERE projection = %(name)s AND version = %(version)s
    FOR UPDATE
) AS serving
