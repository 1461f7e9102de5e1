"""All routers under ``/api``, with the error responses their operations document."""

from fastapi import APIRouter, Depends

from server.api import events, health, metrics, outliers, results, runs, stream
from server.api.deps import single_valued_query
from server.api.errors import responses

# Tokens and the Origin/Host allow-list apply to every operation under /api; the HTTP server
# answers a request it cannot parse (a URL over its limit) with a plain-text 400.
api_router = APIRouter(
    prefix="/api",
    responses=responses(400, 401, 403),
    dependencies=[Depends(single_valued_query)],
)
for module_router in (runs.router, runs.config_router, health.router):
    api_router.include_router(module_router)  # these document their errors per operation
# Operations on one run: an unknown run (or result) is 404, a bad id or parameter 422.
RUN_SCOPED = (metrics.router, events.router, results.router, outliers.router, stream.router)
for module_router in RUN_SCOPED:
    api_router.include_router(module_router, responses=responses(404, 422))
