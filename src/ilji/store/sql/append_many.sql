-- Append a batch to one stream: one statement, so one round trip and one transaction.
-- Events of the batch get consecutive versions, and positions that share the transaction
-- id and count up from index 0. Same contract as append_one.sql; returns the first
-- version and position, or no row when the expectation did not hold.
-- The arrays are sent as binary parameters: a text-format array would have psycopg quote and
-- escape every JSON document in Python, which cost more than the whole insert.
WITH head AS (
    SELECT coalesce(max(version), 0) AS version
    FROM ilji.events
    WHERE stream = %(stream)s
),
-- Once per statement (a CTE with a volatile function is evaluated once), not once per event.
first AS (
    SELECT ilji.xact_position() AS position
),
inserted AS (
    INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)
    SELECT first.position + u.ord - 1,
           u.id, %(stream)s, head.version + u.ord, u.type, u.data, u.metadata
    FROM head, first,
         unnest(%(ids)b::uuid[], %(types)b::text[],
                %(data)b::text[]::jsonb[], %(metadata)b::text[]::jsonb[])
             WITH ORDINALITY AS u(id, type, data, metadata, ord)
    WHERE %(expected)s::bigint = -1
       OR (%(expected)s::bigint = -2 AND head.version > 0)
       OR head.version = %(expected)s::bigint
    RETURNING version, position
)
SELECT min(version), min(position) FROM inserted HAVING count(*) > 0
