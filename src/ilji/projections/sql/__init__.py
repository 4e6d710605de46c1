"""SQL statements of the projections, one operation a file (loaded once at import)."""

from __future__ import annotations

from importlib import resources


def load(name: str) -> bytes:
    """The statement in `<name>.sql` as bytes, which psycopg sends as it is."""
    return resources.files(__package__).joinpath(f"{name}.sql").read_bytes()
