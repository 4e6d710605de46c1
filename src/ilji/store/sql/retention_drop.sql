DELETE FROM ilji.category_retention WHERE category = %(category)s
