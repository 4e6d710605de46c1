-- Several appends ("parts": a stream, its events, an expected version) in one statement, so
-- one round trip, one transaction and one commit for all of them (group commit; also the
-- shape an atomic multi-stream append needs). Unlike append_one/append_many, a part whose
-- expectation does not hold, or whose event ids are stored already, does not stop the
-- others: it is left out and reported, one answer row per part in part order:
--   ok, version (the first new version if ok, else the stream's head), first position (if
--   ok), reused (some of its ids are stored already).
-- A stream may appear in several parts only if every part after its first expects ANY:
-- such parts get consecutive versions in part order on top of the written earlier ones.
-- Positions: part k's events sit at index starts[k] + step - 1 of the transaction's block
-- of 4,096; the caller leaves one unused index between parts, so a part stays recognisable
-- as one batch (find_events_by_id.sql) even next to a part of the same stream.
-- A concurrent append of another process to one of the streams still makes the whole
-- statement fail on events_stream_version_key (or events_id_key for an id); the caller
-- runs it again.
-- MATERIALIZED: each stream's head is read once per part (inlined, it was read twice).
-- first: the position of this transaction's index 0 (ilji.xact_position(), migration 0010),
-- computed once per statement.
WITH first AS MATERIALIZED (SELECT ilji.xact_position() AS position),
part AS MATERIALIZED (
    SELECT p.part, p.stream, p.expected, p.start, p.size,
           (SELECT coalesce(max(h.version), 0) FROM ilji.events AS h WHERE h.stream = p.stream) AS head
    FROM unnest(%(streams)b::text[], %(expected)b::int8[], %(starts)b::int8[], %(sizes)b::int8[])
             WITH ORDINALITY AS p(stream, expected, start, size, part)
),
event AS (
    SELECT u.part, u.step, u.id, u.type, u.data, u.metadata
    FROM unnest(%(parts)b::int8[], %(steps)b::int8[], %(ids)b::uuid[], %(types)b::text[],
                %(data)b::text[]::jsonb[], %(metadata)b::text[]::jsonb[])
             AS u(part, step, id, type, data, metadata)
),
-- One index probe per event on events_id_key (the insert probes the same pages anyway).
reused AS (
    SELECT DISTINCT event.part FROM event JOIN ilji.events AS s ON s.id = event.id
),
verdict AS (
    SELECT part.*,
           part.part IN (SELECT reused.part FROM reused) AS reused,
           part.part NOT IN (SELECT reused.part FROM reused)
           AND (part.expected = -1
                OR (part.expected = -2 AND part.head > 0)
                OR part.head = part.expected) AS ok
    FROM part
),
placed AS (
    SELECT v.*,
           v.head + coalesce(sum(v.size) FILTER (WHERE v.ok)
                                 OVER (PARTITION BY v.stream ORDER BY v.part
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint
               AS base
    FROM verdict AS v
),
inserted AS (
    INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)
    SELECT first.position + p.start + e.step - 1,
           e.id, p.stream, p.base + e.step, e.type, e.data, e.metadata
    FROM first, placed AS p JOIN event AS e ON e.part = p.part
    WHERE p.ok
)
SELECT p.ok,
       CASE WHEN p.ok THEN p.base + 1 ELSE p.head END,
       CASE WHEN p.ok THEN first.position + p.start END,
       p.reused
FROM first, placed AS p
ORDER BY p.part
