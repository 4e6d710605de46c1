-- The slow path of an append that reused event ids: where are those ids stored?
SELECT id, stream, version, position FROM ilji.events WHERE id = ANY(%(ids)s)
