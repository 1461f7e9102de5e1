"""What every request passes before it reaches a route, and when the server may start at all.

``RequestGuard`` (pure ASGI, outermost) answers, in this order:
- 400 when the ``Host`` header is not in ``OBS_ALLOWED_HOSTS`` (DNS rebinding);
- 403 when the server is open (``OBS_AUTH=open``) and the connection did not arrive on a loopback
  address or came through a proxy (``Forwarded``/``X-Forwarded-For``);
- on writes (any method but GET/HEAD/OPTIONS): 403 when an ``Origin`` header is neither the
  server's own nor in ``OBS_ALLOWED_ORIGINS``; 415 when a body or a ``Content-Type`` is present
  and it is not ``application/json`` (a cross-site form or ``text/plain`` fetch cannot send it
  without a CORS preflight, which this server never grants);
- 413 when the body exceeds ``OBS_MAX_BODY_BYTES``: at once from ``Content-Length``, or while it
  streams in (chunked bodies), never after reading it all.
Every response also forbids framing (``X-Frame-Options``, CSP ``frame-ancestors``: no page can
clickjack the dashboard's buttons) and MIME sniffing, and sends no cross-origin Referer.
Authentication and scopes are a FastAPI dependency (``server.api.auth``).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import Settings, get_settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}
RESPONSE_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI re-raises HTTPExceptions met while reading a body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes (OBS_MAX_BODY_BYTES)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a name) is this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: Settings, host: str) -> str | None:
    """Why the server must not start on ``host`` with these settings, or None."""
    if settings.auth == "required":
        return None
    if not is_loopback(host):
        return (
            f"refusing to serve on {host} without authentication: anyone who reaches the port "
            "could submit jobs.  Set OBS_AUTH=required and create a token "
            "(`observatory token create --name admin --scope admin`), or bind to 127.0.0.1."
        )
    public = [h for h in settings.allowed_hosts if not is_loopback(h)]
    if public:
        return (
            f"OBS_ALLOWED_HOSTS names {', '.join(public)}, so the server is meant to be reached "
            "under another name (through a proxy?): set OBS_AUTH=required and use tokens."
        )
    return None


def split_authority(authority: str) -> tuple[str, int | None]:
    """``host[:port]`` (IPv6 in brackets) as (lower-case host without brackets, port)."""
    authority = authority.strip().lower()
    host, port = authority, None
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif authority.count(":") == 1:
        name, _, digits = authority.partition(":")
        if digits.isdigit():
            host, port = name, int(digits)
    return host, port


def host_allowed(host: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.strip("[]").lower()
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def origin_allowed(origin: str, host_header: str, allowed: list[str]) -> bool:
    """The server's own origin (same host and port as the request) or one listed."""
    if origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in allowed}:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return False  # includes the opaque origin "null"
    try:
        origin_port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return False
    host, port = split_authority(host_header)
    return parts.hostname == host and origin_port == (port or DEFAULT_PORTS[parts.scheme])


def is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _reject(settings: Settings, scope: Scope, headers: Headers) -> tuple[int, str] | None:
    host_header = headers.get("host", "")
    host, _ = split_authority(host_header)
    if not host_allowed(host, settings.allowed_hosts):
        return 400, "host not allowed (OBS_ALLOWED_HOSTS)"
    if settings.auth == "open":
        server = (scope.get("server") or ("", None))[0] or ""
        if (server and _is_ip(server) and not is_loopback(server)) or (
            "forwarded" in headers or "x-forwarded-for" in headers
        ):
            return 403, "this server has no authentication and answers only on this machine"
    if scope["method"] in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and not origin_allowed(origin, host_header, settings.allowed_origins):
        return 403, "origin not allowed (OBS_ALLOWED_ORIGINS)"
    content_type = headers.get("content-type")
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if (content_type is not None or has_body) and not is_json(content_type or ""):
        return 415, "writes take a JSON body (Content-Type: application/json)"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _hardened(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *RESPONSE_HEADERS]}
        await send(message)

    return send_with_headers


class RequestGuard:
    """Host/Origin allow-lists, JSON-only writes and the body limit (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _hardened(send)
        settings = get_settings()
        headers = Headers(scope=scope)
        limit = settings.max_body_bytes
        rejection = _reject(settings, scope, headers)
        if rejection is None:
            length = headers.get("content-length")
            if length is not None and not length.isdigit():
                rejection = 400, "invalid Content-Length"
            elif length is not None and int(length) > limit:
                too_large = BodyTooLarge(limit)
                rejection = too_large.status_code, too_large.detail
        if rejection is not None:
            status, detail = rejection
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as error:  # read outside FastAPI's exception handlers
            if started:
                raise
            await JSONResponse({"detail": error.detail}, status_code=413)(scope, receive, send)
