-- Every version of a projection that was created: its fixed partition count and the version
-- of the code that builds it.
SELECT version, partitions, code_version
FROM ilji.projection_versions
WHERE projection = %(name)s
ORDER BY version
