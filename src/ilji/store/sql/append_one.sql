-- Append one event (the common case, without arrays): one statement, one round trip.
-- %(expected)s: -1 any, -2 exists, >= 0 the exact version (0: the stream has no events).
-- Returns the new event's version and position, or no row when the expectation did not
-- hold. A concurrent append to the same stream makes the later of the two fail on
-- events_stream_version_key; a reused event id fails on events_id_key.
WITH head AS (
    SELECT coalesce(max(version), 0) AS version
    FROM ilji.events
    WHERE stream = %(stream)s
)
INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)
SELECT ilji.xact_position(),
       %(id)s, %(stream)s, head.version + 1, %(type)s, %(data)s::jsonb, %(metadata)s::jsonb
FROM head
WHERE %(expected)s::bigint = -1
   OR (%(expected)s::bigint = -2 AND head.version > 0)
   OR head.version = %(expected)s::bigint
RETURNING version, position
