-- The slow path of an append that reused event ids: where are those ids stored, and is the
-- event right before / after each one (same transaction block, next position) of the same
-- stream? An earlier append is a run of one stream's events at consecutive positions of one
-- transaction, with no event of that stream right before or after it: alone, an append is its
-- whole transaction; in a group (append_group.sql) an unused position separates the parts.
SELECT e.id, e.stream, e.version, e.position,
       (e.position & 4095) <> 0
       AND EXISTS (SELECT FROM ilji.events AS b
                   WHERE b.position = e.position - 1 AND b.stream = e.stream) AS joined_before,
       ((e.position + 1) & 4095) <> 0
       AND EXISTS (SELECT FROM ilji.events AS b
                   WHERE b.position = e.position + 1 AND b.stream = e.stream) AS joined_after
FROM ilji.events AS e
WHERE e.id = ANY(%(ids)s)
