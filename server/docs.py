"""``/docs`` (Swagger UI) served entirely from this server.

FastAPI's default pages load their JavaScript and CSS from a CDN, so offline (or behind a strict
proxy) ``/docs`` stays blank.  The assets come from the installed ``fastapi-offline`` package's
static folder (Swagger UI 5, which reads OpenAPI 3.1); only its files are used, through FastAPI's
own ``get_swagger_ui_html`` recipe.  There is no ``/redoc``: ReDoc fetches its logo from a CDN.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
PREFIX = "/vendor/docs"


def mount_docs(app: FastAPI) -> None:
    """Adds ``/docs`` and its assets; create the app with ``docs_url`` and ``redoc_url`` None."""
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} · API",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon.png",
        )
