"""Fault injection: the server, PostgreSQL and connections fail under load; nothing acknowledged is lost."""
