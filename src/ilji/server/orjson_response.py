"""The server's JSON responses, rendered by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    """JSON rendered by orjson: several times faster than the standard library for event pages."""

    def render(self, content: Any) -> bytes:
        """Serialise `content`."""
        return orjson.dumps(content)
