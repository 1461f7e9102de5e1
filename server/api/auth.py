"""Who is asking, and may they: bearer tokens, the dashboard's session cookie, scopes, the
submission rate limit, and ``/api/session`` (the login page's endpoints).

With ``OBS_AUTH=open`` (loopback only, see ``server.security``) every request acts as ``admin``
and credentials are not looked at.  With ``OBS_AUTH=required`` a request needs
``Authorization: Bearer <token>``, or, for GET/HEAD only, the ``obs_session`` cookie, which the
login page sets so that the browser's EventSource (which cannot send headers) can open the live
stream.  The cookie never grants more than ``read``: it is the one credential a browser attaches
by itself, so it can never authorize a write (no CSRF, whatever the browser's SameSite support).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from server.api.deps import SettingsDep
from server.db import session_scope
from server.ratelimit import TokenBucket
from server.security import SAFE_METHODS
from server.store import tokens as token_store
from server.token_schemas import SessionPublic
from server.tokens import Scope

COOKIE = "obs_session"
COOKIE_MAX_AGE = 400 * 24 * 3600  # browsers cap cookies at 400 days; revoking the token ends it
bearer = HTTPBearer(auto_error=False, description="an API token: `observatory token create`")
session_cookie = APIKeyCookie(
    name=COOKIE, auto_error=False, description="set by POST /api/session; GET requests only"
)


@dataclass(frozen=True)
class Principal:
    scope: Scope
    name: str
    token_id: int | None  # None: the server is open
    client: str  # rate-limit key

    def need(self, scope: Scope) -> None:
        if not self.scope.allows(scope):
            raise HTTPException(
                status_code=403, detail=f"this token's scope is {self.scope}; {scope} is needed"
            )


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def authenticate(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    cookie: Annotated[str | None, Depends(session_cookie)],
) -> Principal:
    """The caller: the token presented, or everyone-is-admin when the server is open."""
    client = request.client.host if request.client else "unknown"
    if settings.auth == "open":
        return Principal(Scope.admin, "local (open server)", None, f"ip:{client}")
    if credentials is not None:
        secret, cap = credentials.credentials, Scope.admin
    elif cookie is not None and request.method in SAFE_METHODS:
        secret, cap = cookie, Scope.read
    else:
        raise _unauthorized("missing credentials: send Authorization: Bearer <token>")
    with session_scope(settings.resolved_database_url) as session:
        token = token_store.authenticate(session, secret)
        if token is None:
            raise _unauthorized("invalid or revoked token")
        scope = Scope(token.scope) if cap.allows(Scope(token.scope)) else cap
        return Principal(scope, token.name, token.id, f"token:{token.id}")


AuthenticatedDep = Annotated[Principal, Depends(authenticate)]


def authorize(request: Request, principal: AuthenticatedDep) -> Principal:
    """Every protected route: ``read`` for GET/HEAD/OPTIONS, ``write`` for anything else."""
    principal.need(Scope.read if request.method in SAFE_METHODS else Scope.write)
    return principal


PrincipalDep = Annotated[Principal, Depends(authorize)]


def require_admin(principal: PrincipalDep) -> Principal:
    principal.need(Scope.admin)
    return principal


def limit_submissions(request: Request, principal: PrincipalDep, settings: SettingsDep) -> None:
    """429 with Retry-After past ``OBS_SUBMIT_RATE`` submissions of one token (or address)."""
    limit = settings.submit_limit
    if limit is None:
        return
    state = request.app.state
    bucket: TokenBucket | None = getattr(state, "submit_bucket", None)
    if bucket is None or (bucket.burst, bucket.period) != limit:
        bucket = state.submit_bucket = TokenBucket(*limit)
    wait = bucket.take(principal.client)
    if wait > 0:
        raise HTTPException(
            status_code=429,
            detail=f"too many run submissions (OBS_SUBMIT_RATE={settings.submit_rate})",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


router = APIRouter(prefix="/session", tags=["auth"])


def _public(principal: Principal, settings: SettingsDep) -> SessionPublic:
    return SessionPublic(auth=settings.auth, name=principal.name, scope=principal.scope)


@router.get("", response_model=SessionPublic)
def read_session(principal: AuthenticatedDep, settings: SettingsDep) -> SessionPublic:
    """Who the credentials presented (bearer or cookie) belong to."""
    return _public(principal, settings)


@router.post("", response_model=SessionPublic)
def open_session(
    request: Request,
    response: Response,
    principal: AuthenticatedDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> SessionPublic:
    """Login: checks the bearer token and sets the read-only ``obs_session`` cookie (HttpOnly,
    SameSite=Strict, Secure over HTTPS) for the live stream and downloads."""
    if credentials is not None and settings.auth == "required":
        response.set_cookie(
            COOKIE,
            credentials.credentials,
            max_age=COOKIE_MAX_AGE,
            path="/api",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return _public(principal, settings)


@router.delete("", status_code=204)
def close_session() -> Response:
    """Logout: forgets the cookie (the token itself stays valid until revoked)."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/api", httponly=True, samesite="strict")
    return response
