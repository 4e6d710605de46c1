-- Ilji's own events ($audit, $lifecycle) for several streams in one statement, inside the
-- transaction of the admin action they record. Positions count up from the transaction id
-- like an ordinary batch; each stream's events get its next versions in batch order. The
-- caller holds the system append lock, so no one else is writing these streams.
-- ilji.xact_position() once per statement: a CTE with a volatile function is evaluated once.
WITH first AS (
    SELECT ilji.xact_position() AS position
),
batch AS (
    SELECT u.stream, u.id, u.type, u.data, u.metadata, u.ord,
           row_number() OVER (PARTITION BY u.stream ORDER BY u.ord) AS n
    FROM unnest(%(streams)s::text[], %(ids)s::uuid[], %(types)s::text[],
                %(data)s::text[]::jsonb[], %(metadata)s::text[]::jsonb[])
             WITH ORDINALITY AS u(stream, id, type, data, metadata, ord)
)
INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)
SELECT first.position + b.ord - 1,
       b.id, b.stream,
       (SELECT coalesce(max(h.version), 0) FROM ilji.events AS h WHERE h.stream = b.stream) + b.n,
       b.type, b.data, b.metadata
FROM batch AS b, first
