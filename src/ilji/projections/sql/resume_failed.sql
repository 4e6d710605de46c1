-- Resuming also clears the stop policy's failure: the partition retries the event it stopped at.
UPDATE ilji.projection_checkpoints
SET status = 'stopped', error = NULL, updated_at = clock_timestamp()
WHERE projection = %(name)s AND status = 'failed'
