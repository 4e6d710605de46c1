-- One checkpoint row per partition of a version, with the count stored when the version was
-- created (declare_version.sql), never the count of whichever code runs this: rows for another
-- count would give streams a second partition that reads the log again from position 0.
-- ON CONFLICT DO NOTHING: concurrent workers may run this at the same time.
INSERT INTO ilji.projection_checkpoints (projection, version, partition, partitions)
SELECT v.projection, v.version, k, v.partitions
FROM ilji.projection_versions AS v, generate_series(0, v.partitions - 1) AS k
WHERE v.projection = %(name)s AND v.version = %(version)s
ON CONFLICT DO NOTHING
