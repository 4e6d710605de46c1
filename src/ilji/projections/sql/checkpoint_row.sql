SELECT position, owner, fencing_token, status
FROM ilji.projection_checkpoints
WHERE projection = %(name)s AND version = %(version)s AND partition = %(partition)s
