-- Create a version's row once: its partition count and the code that builds it are fixed from
-- then on. Workers racing here serialise on the primary key; the loser's values are dropped
-- (ON CONFLICT), and every worker then reads back what was stored (versions.sql), so all
-- agree. A version from before 0008 (no code_version) is adopted by the first code whose
-- `version` is not above it.
INSERT INTO ilji.projection_versions AS v (projection, version, partitions, code_version)
VALUES (%(name)s, %(version)s, %(partitions)s, %(code_version)s)
ON CONFLICT (projection, version) DO UPDATE
    SET code_version = EXCLUDED.code_version
    WHERE v.code_version IS NULL AND EXCLUDED.code_version <= v.version
