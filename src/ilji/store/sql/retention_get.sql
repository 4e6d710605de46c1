SELECT category, extract(epoch FROM max_age)::bigint, max_count
FROM ilji.category_retention
WHERE category = %(category)s
