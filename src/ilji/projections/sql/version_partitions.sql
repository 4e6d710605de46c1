-- The partition count a version was created with (rows of one version all agree).
SELECT max(partitions) FROM ilji.projection_checkpoints
WHERE projection = %(name)s AND version = %(version)s
