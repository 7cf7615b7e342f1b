"""The API page for people: Swagger UI at `/docs`, on the app's own `/openapi.json` (ADR 0027).

Every asset comes from the package (`ghingest/app/static/`: Swagger UI vendored by `scripts/vendor_swagger_ui.py`,
and the page's own init script and stylesheet), so the page makes no request outside the app, under the dashboard's
Content-Security-Policy (no inline script or style). It needs no sign-in: it shows the API's shape, no data (as
`/openapi.json` does). "Try it out" calls the API from the browser: with a dashboard session in the same browser the
reads work as they are; with "Authorize" and an API token every operation does (the token stays in the tab's memory).
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

import ghingest
from ghingest.dashboard.templating import SECURITY_HEADERS

PATH = "/docs"
ASSETS = "/docs/assets"
OPENAPI = "/openapi.json"


def _page(version: str) -> str:
    v = escape(version)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <title>API · ghingest</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{ASSETS}/swagger-ui/swagger-ui.css?v={v}">
  <link rel="stylesheet" href="{ASSETS}/api-docs.css?v={v}">
</head>
<body>
  <header class="api-docs-header">
    <a href="/">ghingest</a> · API {v} · <a href="{OPENAPI}">OpenAPI document (JSON)</a>
  </header>
  <noscript>This page needs JavaScript; the API is described in <a href="{OPENAPI}">{OPENAPI}</a>.</noscript>
  <main id="swagger-ui" data-openapi="{OPENAPI}"></main>
  <script src="{ASSETS}/swagger-ui/swagger-ui-bundle.js?v={v}"></script>
  <script src="{ASSETS}/api-docs.js?v={v}"></script>
</body>
</html>
"""


def mount_api_docs(app: FastAPI) -> None:
    """Serve the page at `/docs` and its assets under `/docs/assets/`."""
    page = _page(ghingest.__version__)
    router = APIRouter(include_in_schema=False)

    @router.get(PATH)
    async def api_docs() -> HTMLResponse:
        return HTMLResponse(page, headers=dict(SECURITY_HEADERS))

    app.include_router(router)
    app.mount(ASSETS, StaticFiles(packages=[("ghingest.app", "static")]), name="api-docs-assets")
