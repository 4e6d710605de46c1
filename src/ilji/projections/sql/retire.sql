-- A rebuild cut over to a newer version: this version no longer needs to follow the log.
UPDATE ilji.projection_checkpoints
SET status = 'retired', owner = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
WHERE projection = %(name)s AND version = %(version)s AND partition = %(partition)s
  AND owner = %(owner)s AND fencing_token = %(token)s
