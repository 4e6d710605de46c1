-- What a role may do in schema ilji, for `ilji db grant` to show.
SELECT table_name,
       string_agg(privilege_type, ', ' ORDER BY
           array_position(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'], privilege_type::text))
FROM information_schema.table_privileges
WHERE grantee = %(role)s AND table_schema = 'ilji'
GROUP BY table_name
ORDER BY table_name
