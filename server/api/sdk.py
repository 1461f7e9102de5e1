"""Runs streamed from a user's own script (``observatory`` SDK): create or resume, batches of
points/arrays/events, heartbeat, finish.  No worker and no queue: the client is the trainer.

Batches arrive as gzip JSON and are written through the same store functions as the worker's
(idempotent upserts by run, name/kind/probe and step), so a batch sent twice changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute

from server.api import errors
from server.api.deps import RunDep, SessionDep, SettingsDep
from server.api.runs import to_public
from server.broker import notify
from server.models import Run, RunOrigin, RunStatus
from server.schemas import RunPublic
from server.sdk_schemas import HeartbeatPublic, SdkBatch, SdkFinish, SdkHeartbeat, SdkRunCreate
from server.store import sdk as sdk_store
from server.store.metrics import Point, write_points
from server.store.results import ArrayRecord, EventRecord, unpack_arrays, write_arrays, write_events

MAX_BODY = 256 * 2**20  # bytes of JSON after decompression


class GzipRequest(Request):
    """A request whose body is gunzipped when ``Content-Encoding: gzip`` (bounded: no zip
    bombs), so the endpoints take typed, documented JSON bodies however the client sent them."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            raw = await super().body()
            if self.headers.get("content-encoding", "").lower() == "gzip":
                inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                try:
                    raw = inflater.decompress(raw, MAX_BODY + 1)
                except zlib.error as error:
                    raise HTTPException(422, detail="body: not valid gzip") from error
            if len(raw) > MAX_BODY:
                raise HTTPException(413, detail=f"body: larger than {MAX_BODY} bytes uncompressed")
            self._body = raw
        return self._body


class GzipRoute(APIRoute):
    """FastAPI's recipe for a custom request class: every SDK endpoint reads ``GzipRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def gunzipping(request: Request) -> Response:
            return await handler(GzipRequest(request.scope, request.receive))

        return gunzipping


router = APIRouter(prefix="/sdk/runs", tags=["sdk"], route_class=GzipRoute)


def sdk_run(run: RunDep) -> Run:
    if run.origin != RunOrigin.sdk:
        raise HTTPException(409, detail=f"run {run.id} is trained by a worker, not the SDK")
    return run


SdkRunDep = Annotated[Run, Depends(sdk_run)]


@router.post("", response_model=RunPublic)
def open_run(body: SdkRunCreate, session: SessionDep, settings: SettingsDep) -> RunPublic:
    run = sdk_store.open_run(session, body=body)
    if run is None:
        raise HTTPException(404, detail=f"resume: no SDK run {body.resume}")
    session.commit()
    notify(settings, run.id)
    return to_public(run)


@router.post("/{run_id}/batches", status_code=204)
def ingest(run: SdkRunDep, batch: SdkBatch, session: SessionDep, settings: SettingsDep) -> None:
    points = []
    if batch.metrics is not None:
        m = batch.metrics
        points = [Point(*row) for row in zip(m.name, m.step, m.value, m.wall_time, strict=True)]
    arrays = [
        ArrayRecord(a.probe, a.step, _arrays(i, a.data), a.meta) for i, a in enumerate(batch.arrays)
    ]
    events = [EventRecord(e.step, e.kind, e.payload) for e in batch.events]
    connection = session.connection()
    write_points(connection, run_id=run.id, points=points)
    write_events(connection, run_id=run.id, events=events)
    write_arrays(connection, run_id=run.id, records=arrays)
    if batch.probes:
        known = run.config.get("probes")
        known = known if isinstance(known, dict) else {}  # a user's own "probes" entry loses
        run.config = {**run.config, "probes": {**known, **batch.probes}}
    sdk_store.beat(session, run=run, step=batch.step)
    session.commit()
    notify(settings, run.id)


def _arrays(index: int, data: str) -> dict:
    try:
        return unpack_arrays(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError, OSError, EOFError, gzip.BadGzipFile) as error:
        raise errors.invalid(("body", "arrays", index, "data"), "not a base64 .npz") from error


@router.post("/{run_id}/heartbeat", response_model=HeartbeatPublic)
def heartbeat(
    run: SdkRunDep, body: SdkHeartbeat, session: SessionDep, settings: SettingsDep
) -> HeartbeatPublic:
    if RunStatus(run.status) in (RunStatus.running, RunStatus.lost):
        was = run.status
        sdk_store.beat(session, run=run, step=body.step)
        session.commit()
        if was != run.status:
            notify(settings, run.id)
    return HeartbeatPublic(status=run.status, cancel_requested=run.cancel_requested)


@router.post("/{run_id}/finish", response_model=RunPublic)
def finish(
    run: SdkRunDep, body: SdkFinish, session: SessionDep, settings: SettingsDep
) -> RunPublic:
    sdk_store.finish(
        session, run=run, status=RunStatus(body.status), step=body.step, error=body.error
    )
    session.commit()
    notify(settings, run.id)
    return to_public(run)
