-- The fence for transactions that do not move the checkpoint (replays of parked events):
-- touch our row, matching owner and token, as the LAST statement before COMMIT. 0 rows means
-- we lost the lease and the caller rolls back; 1 row keeps the row locked until COMMIT, so no
-- acquirer can slip in between this check and the commit (it waits, then sees our lease).
UPDATE ilji.projection_checkpoints
SET updated_at = clock_timestamp()
WHERE projection = %(name)s AND version = %(version)s AND partition = %(partition)s
  AND owner = %(owner)s AND fencing_token = %(token)s
