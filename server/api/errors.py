"""Error bodies: one shape per kind of error, the responses each operation documents, and the
handlers that make every error answer in those shapes.

- 422: ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` — always a list naming each
  field (``loc``), whether pydantic, FastAPI or a handler found the problem.  The offending input
  is never echoed (a 100 MB body would come back whole, and a lone surrogate cannot be encoded).
- every other error: ``{"detail": "..."}``.
- 500: a fixed message and a ``request_id`` that is logged with the traceback; never the
  exception's text, which may hold database statements or parameters.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from server.schemas import ErrorPublic, ValidationErrorPublic

log = logging.getLogger(__name__)
MAX_LOC_CHARS = 80  # a field name or key echoed in ``loc``
MAX_MSG_CHARS = 300  # messages of custom validators may quote (short) input
METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")
UNPARSABLE = {UnicodeDecodeError: "not UTF-8", RecursionError: "JSON nested too deeply"}


DESCRIPTIONS = {
    400: "Malformed HTTP request, answered by the HTTP server itself (e.g. a URL over its limit)",
    401: "Missing or invalid API token",
    403: "The token lacks the scope, or the Origin/Host is not allowed",
    404: "No such run (or no such result of the run)",
    409: "The run's state does not allow it",
    413: "Request body too large",
    415: "Writes take application/json only",
    422: "Invalid input: each item names the field (loc) and the reason",
    429: "Too many requests: retry after the Retry-After header's seconds",
    503: "The broker is unreachable: the run was not queued",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of an operation (or router) for these error codes."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        documented[code] = {"description": DESCRIPTIONS[code]}
        if code == 400:
            documented[code]["content"] = {"text/plain": {"schema": {"type": "string"}}}
        else:
            documented[code]["model"] = ValidationErrorPublic if code == 422 else ErrorPublic
    return documented


def safe_text(value: object, limit: int) -> str:
    """``value`` as text that JSON can carry: lone surrogates replaced, at most ``limit`` chars."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def issues(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors as ``loc``/``msg``/``type`` only: no ``input``, ``ctx`` or ``url``."""
    return [
        {
            "loc": [
                part if isinstance(part, int) else safe_text(part, MAX_LOC_CHARS)
                for part in error.get("loc", ())
            ],
            "msg": safe_text(error.get("msg", "invalid"), MAX_MSG_CHARS),
            "type": safe_text(error.get("type", "value_error"), MAX_LOC_CHARS),
        }
        for error in errors
    ]


def invalid(loc: Sequence[str | int], msg: str) -> RequestValidationError:
    """A 422 raised by a handler, in the same shape as pydantic's: ``raise invalid(...)``."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": "value_error"}])


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at this path (a 405 must name them all in ``Allow``)."""
    routes = [r for r in app.router.routes if not isinstance(r, Mount)]  # not the static files
    path = request.url.path
    return [
        method
        for method in METHODS
        if any(
            route.matches({"type": "http", "path": path, "root_path": "", "method": method})[0]
            == Match.FULL
            for route in routes
        )
    ]


def literal_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods the OpenAPI document lists for exactly this path when it has no parameters: a
    request for ``PATCH /api/runs/validate`` names that operation, not the run ``validate``."""
    operations = app.openapi()["paths"].get(request.url.path, {})
    return sorted(method.upper() for method in operations)


def not_allowed(allowed: list[str]) -> JSONResponse:
    return JSONResponse(
        status_code=405,
        content={"detail": "Method Not Allowed"},
        headers={"Allow": ", ".join(allowed)},
    )


def install(app: FastAPI) -> None:
    """Register the handlers that give every error its documented shape."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        literal = literal_methods(app, request)
        if literal and request.method not in literal:  # a parametrized route took a literal path
            return not_allowed(literal)
        return JSONResponse(status_code=422, content={"detail": issues(error.errors())})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        status, detail = error.status_code, error.detail
        if status == 400 and (reason := UNPARSABLE.get(type(error.__cause__))):
            # FastAPI's "error parsing the body" (a JSONDecodeError is a 422 already)
            status, detail = 422, [{"loc": ("body",), "msg": reason, "type": "json_invalid"}]
        if status == 422:  # raised by hand with a text detail: same list shape as pydantic's
            errors = detail if isinstance(detail, list) else [{"loc": (), "msg": detail}]
            return JSONResponse(status_code=422, content={"detail": issues(errors)})
        if status == 404 and request.url.path.startswith("/api/"):
            # the static files' mount answers every path no API route takes fully: a path that
            # an API route serves with other methods is a 405, not a missing page
            allowed = allowed_methods(app, request)
            if allowed and request.method not in allowed:
                status = 405
        if status == 405:
            return not_allowed(literal_methods(app, request) or allowed_methods(app, request))
        return JSONResponse(
            status_code=status,
            content={"detail": safe_text(detail, MAX_MSG_CHARS)},
            headers=headers or None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex
        log.error(
            "unhandled error, request_id=%s, on %s %s",
            request_id,
            request.method,
            request.url.path,
            exc_info=error,
        )
        return JSONResponse(
            status_code=500,
            content={"detail": "internal error", "request_id": request_id},
            headers={"X-Request-ID": request_id},
        )
