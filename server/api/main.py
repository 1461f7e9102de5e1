"""All routers under ``/api``.  Everything but health and the session endpoints needs a token
when ``OBS_AUTH=required`` (``auth.authorize``: read for GET, write otherwise)."""

from fastapi import APIRouter, Depends

from server.api import auth, events, health, metrics, outliers, results, runs, stream, tokens

protected = APIRouter(dependencies=[Depends(auth.authorize)])
for module_router in (
    runs.router,
    runs.config_router,
    metrics.router,
    events.router,
    results.router,
    outliers.router,
    stream.router,
    tokens.router,
):
    protected.include_router(module_router)

api_router = APIRouter(prefix="/api")
api_router.include_router(protected)
api_router.include_router(health.router)  # public: load balancers and compose probe it
api_router.include_router(auth.router)  # the login page's endpoints authenticate themselves
