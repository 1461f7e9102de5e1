"""All routers under ``/api``, with the error responses their operations document.

Every operation on ``api_router`` needs a token when ``OBS_AUTH=required`` (``auth.authorize``:
read for GET/HEAD, write otherwise), so a router added here is protected by default; only health
and the login page's ``/session`` are on ``public_router``.
"""

from fastapi import APIRouter, Depends

from server.api import (
    auth,
    datasets,
    events,
    explain,
    health,
    metrics,
    outliers,
    results,
    runs,
    sdk,
    stream,
    sweeps,
    tasks,
    tokens,
)
from server.api.deps import single_valued_query
from server.api.errors import responses

# Tokens and the Origin/Host allow-list apply to every operation under /api; the HTTP server
# answers a request it cannot parse (a URL over its limit) with a plain-text 400.
api_router = APIRouter(
    prefix="/api",
    responses=responses(400, 401, 403),
    dependencies=[Depends(auth.authorize), Depends(single_valued_query)],
)
for module_router in (
    runs.router,
    runs.config_router,
    tasks.router,
    datasets.router,
    sweeps.router,
):
    api_router.include_router(module_router)  # these document their errors per operation
# Operations on one run (or token): an unknown one is 404, a bad id or parameter 422.
RUN_SCOPED = (
    metrics.router,
    events.router,
    results.router,
    outliers.router,
    stream.router,
    explain.router,
)
for module_router in (*RUN_SCOPED, metrics.compare_router, tokens.router):
    api_router.include_router(module_router, responses=responses(404, 422))
# SDK runs: writing to a worker's run, or to a finished one, is a conflict.
api_router.include_router(sdk.router, responses=responses(404, 409, 413, 415, 422))

public_router = APIRouter(
    prefix="/api",
    responses=responses(400, 403),
    dependencies=[Depends(single_valued_query)],
)
public_router.include_router(health.router)  # load balancers and compose probe it
public_router.include_router(auth.router, responses=responses(401, 415, 422))  # authenticates
