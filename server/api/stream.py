"""Live updates of a run as Server-Sent Events.

Events: ``status`` (status, step, progress), ``metrics`` (new points grouped by series),
``event`` (one run event), ``end`` (the run finished and everything was sent).  Each message's id is
a cursor (the last step sent per series and the last event id); a reconnecting EventSource sends
it back as ``Last-Event-ID`` and the stream resumes exactly after it.

All streams of a run in one server process share one poller (``server.api.live``), which wakes on
the run's Redis pub/sub channel (the worker notifies it after each commit) and polls the database
every ``OBS_STREAM_POLL_SECONDS`` in any case, so a lost notification only delays a point, never
loses it.  A stream holds no database connection while it waits.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse

from server.api import errors
from server.api.live import Hub, follow, hub_of, run_exists
from server.config import get_settings
from server.store.live import Cursor

router = APIRouter(prefix="/runs/{run_id}", tags=["stream"])

MAX_ID = 2**31 - 1  # runs.id is a 32-bit integer on PostgreSQL
MAX_COUNT = 2**63 - 1  # steps and event ids are 64-bit
MAX_CURSOR_CHARS = 32_768


def encode_cursor(series: dict[str, int], event_id: int) -> str:
    raw = json.dumps({"s": series, "e": event_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _is_count(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT  # not bool, not float (1e400 is inf)


def decode_cursor(token: str | None, source: tuple[str, str] = ("query", "cursor")) -> Cursor:
    """A cursor from ``encode_cursor``; anything else is a 422 naming ``source`` and the reason
    (never echoing the token or the parser's error)."""
    if not token:
        return Cursor()

    def invalid(reason: str) -> RequestValidationError:
        return errors.invalid(source, f"invalid stream cursor: {reason}")

    if len(token) > MAX_CURSOR_CHARS:
        raise invalid(f"longer than {MAX_CURSOR_CHARS} characters")
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, RecursionError):
        raise invalid("not base64-encoded JSON (use an id or cursor this server sent)") from None
    if not isinstance(data, dict) or set(data) != {"s", "e"}:
        raise invalid('expected {"s": {series: step}, "e": event id}')
    if not _is_count(data["e"]):
        raise invalid(f"e must be an integer from 0 to {MAX_COUNT}")
    series = data["s"]
    if not isinstance(series, dict) or not all(_is_count(step) for step in series.values()):
        raise invalid(f"s must map series names to integers from 0 to {MAX_COUNT}")
    return Cursor(series, data["e"])


async def _messages(hub: Hub, run_id: int, cursor: Cursor) -> AsyncIterator[dict]:
    async with contextlib.aclosing(follow(hub, run_id, cursor)) as messages:
        async for message in messages:
            out = {"event": message.event, "data": message.data}
            if message.advances:
                out["id"] = encode_cursor(cursor.series, cursor.event_id)
            yield out


@router.get("/stream", response_class=EventSourceResponse)
async def stream(
    request: Request,
    run_id: Annotated[int, Path(ge=1)],
    cursor: Annotated[
        str | None, Query(description="from GET /metrics; default: from the start")
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    if last_event_id:
        start = decode_cursor(last_event_id, ("header", "last-event-id"))
    else:
        start = decode_cursor(cursor)
    hub = hub_of(request.app, get_settings())
    # A short read, finished before streaming starts (a live feed of the run proves it exists).
    if run_id > MAX_ID or not (
        hub.watching(run_id) or await hub.read(run_exists, hub.database_url, run_id)
    ):
        raise HTTPException(status_code=404, detail=f"run {run_id} not found")
    return EventSourceResponse(_messages(hub, run_id, start), ping=15, send_timeout=30)
