"""All routers under ``/api``.

Every operation on ``api_router`` needs a token when ``OBS_AUTH=required`` (``auth.authorize``:
read for GET/HEAD, write otherwise), so a router added here is protected by default; only health
and the login page's ``/session`` are on ``public_router``.
"""

from fastapi import APIRouter, Depends

from server.api import (
    auth,
    events,
    health,
    metrics,
    outliers,
    results,
    runs,
    sdk,
    stream,
    tokens,
)

api_router = APIRouter(prefix="/api", dependencies=[Depends(auth.authorize)])
for module_router in (
    runs.router,
    runs.config_router,
    metrics.router,
    events.router,
    results.router,
    outliers.router,
    stream.router,
    tokens.router,
    sdk.router,
):
    api_router.include_router(module_router)

public_router = APIRouter(prefix="/api")
public_router.include_router(health.router)  # load balancers and compose probe it
public_router.include_router(auth.router)  # authenticates itself
