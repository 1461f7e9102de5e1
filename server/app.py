"""``create_app()``: the API under ``/api``, the dashboard and plotly.js as static files."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from server.api import errors
from server.api.main import api_router, public_router
from server.docs import mount_docs
from server.security import RequestGuard
from server.sweep import sweeping

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app() -> FastAPI:
    app = FastAPI(
        title="Training Dynamics Observatory",
        version="0.1.0",
        generate_unique_id_function=_operation_id,
        lifespan=sweeping,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(api_router)
    app.include_router(public_router)
    app.add_middleware(RequestGuard)  # Host/Origin allow-lists, JSON-only writes, body limit
    mount_docs(app)

    errors.install(app)

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    @app.get("/runs/{run_id}", include_in_schema=False)
    def run_page(run_id: int) -> FileResponse:
        return FileResponse(FRONTEND / "run.html")

    @app.get("/sweeps/{sweep_id}", include_in_schema=False)
    def sweep_page(sweep_id: int) -> FileResponse:
        return FileResponse(FRONTEND / "sweep.html")

    app.mount("/", StaticFiles(directory=FRONTEND, html=True), name="frontend")
    return app
