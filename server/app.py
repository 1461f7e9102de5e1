"""``create_app()``: the API under ``/api``, the dashboard and plotly.js as static files."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import plotly
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from server.api.main import api_router
from server.docs import mount_docs

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
log = logging.getLogger(__name__)


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def create_app() -> FastAPI:
    app = FastAPI(
        title="Training Dynamics Observatory",
        version="0.1.0",
        generate_unique_id_function=_operation_id,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(api_router)
    mount_docs(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        """422 naming each field; the echoed input may hold inf/NaN, which JSON cannot."""
        return JSONResponse(
            status_code=422, content={"detail": _finite(jsonable_encoder(error.errors()))}
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": f"internal error: {error!r}"})

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    @app.get("/runs/{run_id}", include_in_schema=False)
    def run_page(run_id: int) -> FileResponse:
        return FileResponse(FRONTEND / "run.html")

    app.mount("/", StaticFiles(directory=FRONTEND, html=True), name="frontend")
    return app
