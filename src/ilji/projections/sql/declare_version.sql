-- Create a version's row once: its partition count and the code that builds it are fixed from
-- then on. Workers racing here serialise on the primary key; the loser's values are dropped
-- (ON CONFLICT DO NOTHING), and every worker then reads back what was stored (versions.sql),
-- so all agree.
INSERT INTO ilji.projection_versions (projection, version, partitions, code_version)
VALUES (%(name)s, %(version)s, %(partitions)s, %(code_version)s)
ON CONFLICT (projection, version) DO NOTHING
