-- The slow path of an append that reused event ids: where are those ids stored, and how
-- many events did the append that stored each one write? (An append's events share one
-- transaction id, which is the position shifted right by 12 bits.)
SELECT e.id, e.stream, e.version, e.position,
       (SELECT count(*)
        FROM ilji.events AS b
        WHERE b.position >= (e.position >> 12) << 12
          AND b.position < ((e.position >> 12) + 1) << 12) AS batch_size
FROM ilji.events AS e
WHERE e.id = ANY(%(ids)s)
