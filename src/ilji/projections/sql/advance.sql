-- The fence: move the checkpoint from the batch's first cursor to its last position, in the
-- transaction that holds the batch's read-model writes, as its LAST statement before COMMIT.
--
-- It only matches while we still own the row with our token and nobody moved the checkpoint
-- under us (compare-and-set on position): 0 rows means another worker took over, and the
-- caller rolls the whole transaction back, read-model writes included. Running it last keeps
-- the row lock it takes (which an acquirer would wait for) to the moment before COMMIT.
-- It also extends the lease: a committing owner is alive. That never resurrects a lost lease,
-- since owner and token must still match.
UPDATE ilji.projection_checkpoints
SET position = %(last)s,
    events_applied = events_applied + %(applied)s,
    events_per_second = %(rate)s,
    status = %(status)s,
    lease_expires_at = greatest(lease_expires_at, clock_timestamp() + make_interval(secs => %(ttl)s)),
    updated_at = clock_timestamp()
WHERE projection = %(name)s AND version = %(version)s AND partition = %(partition)s
  AND owner = %(owner)s AND fencing_token = %(token)s AND position = %(first)s
