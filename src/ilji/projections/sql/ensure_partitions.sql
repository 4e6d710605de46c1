-- One checkpoint row per partition of a version, created by whichever worker gets here first.
-- ON CONFLICT DO NOTHING: concurrent workers may run this at the same time.
INSERT INTO ilji.projection_checkpoints (projection, version, partition, partitions)
SELECT %(name)s, %(version)s, k, %(partitions)s
FROM generate_series(0, %(partitions)s - 1) AS k
ON CONFLICT DO NOTHING
