-- The stop policy: a poison event stops this partition until an operator resumes it.
-- The checkpoint stays before the event; acquire.sql will not take a failed row.
UPDATE ilji.projection_checkpoints
SET status = 'failed', error = %(error)s, owner = NULL, lease_expires_at = NULL,
    updated_at = clock_timestamp()
WHERE projection = %(name)s AND version = %(version)s AND partition = %(partition)s
  AND owner = %(owner)s AND fencing_token = %(token)s
