"""Appends past the position limit, without using up 2^41 transaction ids first."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg

from ilji.domain.events import MAX_SAFE_POSITION


@contextlib.contextmanager
def past_the_position_limit(database_url: str) -> Iterator[str]:
    """A category whose appends land past the position limit, as they would after 2^41 transactions.

    A BEFORE trigger gives its rows a position of 2^53 or more, so the store's own append
    statement meets the real CHECK violation, with PostgreSQL's `Failing row contains (...)`
    DETAIL, event data included. Yields the category; the trigger is dropped at the end.
    """
    prefix = f"limit{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            CREATE FUNCTION ilji.{prefix}_past_the_limit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.stream LIKE '{prefix}-%' THEN
                    NEW.position := {MAX_SAFE_POSITION + 1} + NEW.position % 4096;
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER {prefix}_past_the_limit BEFORE INSERT ON ilji.events
                FOR EACH ROW EXECUTE FUNCTION ilji.{prefix}_past_the_limit();
            """
        )
    try:
        yield prefix
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP TRIGGER {prefix}_past_the_limit ON ilji.events")
            conn.execute(f"DROP FUNCTION ilji.{prefix}_past_the_limit()")
