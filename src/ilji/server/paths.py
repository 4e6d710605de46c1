"""What the routes' URLs take: stream and category names in the path, and the `ilji_name` convertor.

Importing this module registers the convertor, so every route module imports it before
declaring a `{stream:ilji_name}` path.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Path
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import Match, Route
from starlette.types import Scope

from ilji.domain.validation import MAX_STREAM_NAME_LENGTH
from ilji.server.models import CATEGORY_PATTERN, NAME_PATTERN


class NameConvertor(Convertor[str]):
    """Any text as a path parameter: slashes, newlines, even nothing.

    Starlette's `path` convertor (`.*`) stops at a newline and `str` at a slash, so such
    names would get a bare 404 from the router; matching them instead lets the routes answer
    with a 400 that says what is wrong with the name.
    """

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        """The name as it is."""
        return value

    def to_string(self, value: str) -> str:
        """The name as it is."""
        return value


register_url_convertor("ilji_name", NameConvertor())

StreamName = Annotated[
    str,
    Path(min_length=1, max_length=MAX_STREAM_NAME_LENGTH, pattern=NAME_PATTERN, description="like order-42"),
]
CategoryName = Annotated[
    str,
    Path(min_length=1, max_length=MAX_STREAM_NAME_LENGTH, pattern=CATEGORY_PATTERN, description="like order"),
]


class PlainRoute(Route):
    """A Starlette route that, like FastAPI's, names itself in the scope (for the metrics label)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Match as Starlette does, and record this route in the child scope."""
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def stream_url(stream: str, from_version: int) -> str:
    """Where a stream is read from `from_version` on (the `Location` of an append)."""
    return f"/v1/streams/{quote(stream, safe='')}?from_version={from_version}"
