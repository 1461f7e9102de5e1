"""All routers under ``/api``."""

from fastapi import APIRouter

from server.api import events, health, metrics, outliers, results, runs, sdk, stream

api_router = APIRouter(prefix="/api")
for module_router in (
    runs.router,
    runs.config_router,
    metrics.router,
    events.router,
    results.router,
    outliers.router,
    stream.router,
    health.router,
    sdk.router,
):
    api_router.include_router(module_router)
