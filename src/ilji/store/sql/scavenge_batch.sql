-- Remove up to `limit` rows that the lifecycle rules hide, oldest positions first, keeping
-- each stream's newest row (see migration 0007). The candidates come from the rule tables,
-- which are small: the streams with a rule (an index range each), then the categories with
-- a retention rule (their part of the category index). Returns the stream of each row.
WITH hidden AS (
    SELECT e.position, e.stream, e.version
    FROM ilji.stream_rules AS r
    JOIN ilji.events AS e ON e.stream = r.stream AND e.version < r.hide_below
    UNION
    SELECT e.position, e.stream, e.version
    FROM ilji.category_retention AS c
    JOIN ilji.events AS e ON e.category = c.category
    WHERE e.recorded_at < statement_timestamp() - c.max_age
       OR e.version <= (SELECT max(h.version) FROM ilji.events AS h WHERE h.stream = e.stream) - c.max_count
),
doomed AS (
    SELECT d.position
    FROM hidden AS d
    WHERE d.version < (SELECT max(h.version) FROM ilji.events AS h WHERE h.stream = d.stream)
    ORDER BY d.position
    LIMIT %(limit)s
)
DELETE FROM ilji.events AS e
USING doomed
WHERE e.position = doomed.position
RETURNING e.stream
