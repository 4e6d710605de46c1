INSERT INTO ilji.category_retention AS c (category, max_age, max_count)
VALUES (%(category)s, make_interval(secs => %(max_age_seconds)s::float8), %(max_count)s)
ON CONFLICT (category) DO UPDATE
SET max_age = EXCLUDED.max_age, max_count = EXCLUDED.max_count, changed_at = statement_timestamp()
