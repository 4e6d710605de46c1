-- Cutover, step 3 (repeated): how far the new version has got. Every partition must exist and
-- have reached everything the serving version reflects, so no reader ever sees the view go
-- back in time when it switches tables.
SELECT count(*), coalesce(min(position), 0), bool_and(status IN ('running', 'catching_up'))
FROM ilji.projection_checkpoints
WHERE projection = %(name)s AND version = %(version)s
