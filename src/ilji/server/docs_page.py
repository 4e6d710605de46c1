"""The OpenAPI document (`/openapi.json`) and the API docs page (`/docs`).

The page is Swagger UI from files shipped in the package, no CDN.

The page embeds the OpenAPI document as a JSON data block (a browser fetching /openapi.json by
itself would carry no token) and starts Swagger UI from `swagger_ui/init.js`, so it runs under
the same strict content policy as the console: no inline script, nothing from another site.
"""

from __future__ import annotations

import hashlib
import html
from importlib import resources
from typing import Any

import orjson
from fastapi import Depends, HTTPException, Request
from starlette.responses import Response

from ilji.server.auth import Role, require
from ilji.server.openapi import api_router
from ilji.server.orjson_response import OrjsonResponse

_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

#: Swagger UI styles some elements through `style` attributes, hence 'unsafe-inline' for styles
#: only; scripts come from this server alone.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script type="application/json" id="ilji-openapi">{spec}</script>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""


def _load() -> dict[str, tuple[bytes, str, str]]:
    folder = resources.files("ilji.server").joinpath("swagger_ui")
    files: dict[str, tuple[bytes, str, str]] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _MEDIA_TYPES:
            body = entry.read_bytes()
            files[entry.name] = (
                body,
                _MEDIA_TYPES[suffix],
                '"' + hashlib.sha256(body).hexdigest()[:20] + '"',
            )
    return files


_FILES = _load()


def page(title: str, spec: dict[str, Any]) -> str:
    """The HTML of the docs page for `spec`."""
    # In a <script> block only `</` can end it early: escape it as JSON allows (`<\\/`).
    embedded = orjson.dumps(spec).decode().replace("</", "<\\/")
    return _PAGE.format(title=html.escape(title), spec=embedded)


router = api_router(include_in_schema=False)


@router.get("/openapi.json", dependencies=[Depends(require(Role.READ))])
async def openapi_json(request: Request) -> Response:
    """The OpenAPI document (read role when tokens are configured)."""
    return OrjsonResponse(request.app.openapi())


@router.get("/docs", dependencies=[Depends(require(Role.READ))])
async def docs(request: Request) -> Response:
    """The docs page, the OpenAPI document inside (read role when tokens are configured)."""
    return Response(
        page("Ilji API", request.app.openapi()), media_type="text/html", headers=_SECURITY_HEADERS
    )


@router.get("/docs/{name}")
async def docs_file(request: Request, name: str) -> Response:
    """One of Swagger UI's files (public: they hold no data)."""
    found = _FILES.get(name)
    if found is None:
        raise HTTPException(404, detail="no such file of the API docs page")
    body, media_type, etag = found
    headers = {**_SECURITY_HEADERS, "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
