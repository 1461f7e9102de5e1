"""Live updates of a run as Server-Sent Events.

Events: ``status`` (status, step, progress), ``metrics`` (new points grouped by series),
``event`` (one run event), ``end`` (the run finished and everything was sent).  Each message's id is
a cursor (the last step sent per series and the last event id); a reconnecting EventSource sends
it back as ``Last-Event-ID`` and the stream resumes exactly after it.

The stream wakes on the run's Redis pub/sub channel, which the worker notifies after each commit,
and polls the database every ``OBS_STREAM_POLL_SECONDS`` in any case, so a lost notification only
delays a point, never loses it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, Header, HTTPException, Query, Request
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from server.api.deps import RunDep
from server.api.runs import to_public
from server.broker import channel
from server.config import Settings, get_settings
from server.db import get_sessionmaker
from server.models import Run, RunStatus
from server.store.metrics import points_after
from server.store.results import list_events

router = APIRouter(prefix="/runs/{run_id}", tags=["stream"])


def encode_cursor(series: dict[str, int], event_id: int) -> str:
    raw = json.dumps({"s": series, "e": event_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(token: str | None) -> tuple[dict[str, int], int]:
    if not token:
        return {}, 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        series = {str(k): int(v) for k, v in data["s"].items()}
        return series, int(data["e"])
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as error:
        raise HTTPException(status_code=422, detail=f"invalid stream cursor: {error}") from error


@dataclass
class Snapshot:
    run: dict | None
    points: list[tuple[str, int, float | None]]
    events: list[dict]


def _poll(settings: Settings, run_id: int, series: dict[str, int], event_id: int) -> Snapshot:
    with get_sessionmaker(settings.resolved_database_url)() as session:
        run = session.get(Run, run_id)  # read first: a finished status means all points are in
        if run is None:
            return Snapshot(None, [], [])
        status = to_public(run).model_dump(mode="json", exclude={"config"})
        points = points_after(session, run_id=run_id, cursors=series)
        events = [
            {"id": e.id, "step": e.step, "kind": e.kind, "payload": e.payload}
            for e in list_events(session, run_id=run_id, after_id=event_id)
        ]
    return Snapshot(status, points, events)


async def _wake(pubsub: aioredis.client.PubSub | None, timeout: float) -> None:
    if pubsub is None:
        await asyncio.sleep(timeout)
        return
    try:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        while message is not None:  # drain: one database poll serves a burst of commits
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
    except aioredis.RedisError:
        await asyncio.sleep(timeout)


async def run_events(
    request: Request, settings: Settings, run_id: int, series: dict[str, int], event_id: int
) -> AsyncIterator[dict]:
    client = aioredis.Redis.from_url(settings.redis_url)
    pubsub: aioredis.client.PubSub | None = client.pubsub()
    try:
        await pubsub.subscribe(channel(run_id))
    except aioredis.RedisError:
        pubsub = None
    last_status = None
    try:
        while not await request.is_disconnected():
            snap = await run_in_threadpool(_poll, settings, run_id, series, event_id)
            if snap.run is None:
                yield {"event": "end", "data": json.dumps({"status": "deleted"})}
                return
            for event in snap.events:
                event_id = event["id"]
                yield {
                    "event": "event",
                    "id": encode_cursor(series, event_id),
                    "data": json.dumps(event),
                }
            if snap.points:
                grouped: dict[str, dict[str, list]] = {}
                for name, step, value in snap.points:
                    group = grouped.setdefault(name, {"steps": [], "values": []})
                    group["steps"].append(step)
                    group["values"].append(value)
                    series[name] = step
                yield {
                    "event": "metrics",
                    "id": encode_cursor(series, event_id),
                    "data": json.dumps(grouped),
                }
            if snap.run != last_status:
                last_status = snap.run
                yield {"event": "status", "data": json.dumps(snap.run)}
            if RunStatus(snap.run["status"]).finished and not snap.points and not snap.events:
                yield {"event": "end", "data": json.dumps(snap.run)}
                return
            if not snap.points:
                await _wake(pubsub, settings.stream_poll_seconds)
    finally:
        if pubsub is not None:
            with contextlib.suppress(aioredis.RedisError):
                await pubsub.aclose()
        await client.aclose()


@router.get("/stream", response_class=EventSourceResponse)
async def stream(
    run: RunDep,
    request: Request,
    cursor: Annotated[
        str | None, Query(description="from GET /metrics; default: from the start")
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    series, event_id = decode_cursor(last_event_id or cursor)
    settings = get_settings()
    return EventSourceResponse(
        run_events(request, settings, run.id, series, event_id), ping=15, send_timeout=30
    )
