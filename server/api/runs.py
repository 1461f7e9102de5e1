"""Runs: submit, list, read, cancel, delete."""

from __future__ import annotations

import enum
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.encoders import jsonable_encoder
from sqlalchemy.orm import Session

from server.api.auth import limit_submissions
from server.api.datasets import find_manifest, resolve_task
from server.api.deps import RunDep, SessionDep, SettingsDep
from server.api.errors import responses
from server.broker import enqueue_run, notify, wake_worker
from server.config import Settings
from server.datasets import DatasetError
from server.limits import check_limits
from server.models import Run, RunStatus
from server.presets import PRESETS
from server.schemas import (
    PRINTABLE,
    RunConfig,
    RunCostPublic,
    RunCreate,
    RunPublic,
    RunsPublic,
    RunUpdate,
    SeriesSummary,
)
from server.store import runs as run_store
from server.validation import SERIES_NAME
from server.zoo_presets import CIFAR10_SUBSET, on_paper_data

router = APIRouter(prefix="/runs", tags=["runs"])
log = logging.getLogger(__name__)
MAX_SUMMARY = 20  # series per summary request
RunSort = enum.StrEnum("RunSort", {name: name for name in run_store.SORTABLE})


def to_public(run: Run) -> RunPublic:
    progress = min(1.0, run.step / run.total_steps) if run.total_steps else 0.0
    if run.status == RunStatus.completed:
        progress = 1.0
    data = {c.name: getattr(run, c.name) for c in Run.__table__.columns}
    return RunPublic.model_validate({**data, "progress": progress})


@router.post(
    "",
    status_code=201,
    response_model=RunPublic,
    responses=responses(413, 415, 422, 429, 503),
    dependencies=[Depends(limit_submissions)],
)
def create_run(body: RunCreate, session: SessionDep, settings: SettingsDep) -> RunPublic:
    resolve_task(body, session, settings)
    check_limits(body, settings)
    run = run_store.create_run(session, config=body)
    session.commit()
    queue_runs(session, settings, [run])
    return to_public(run)


def queue_runs(session: Session, settings: Settings, runs: list[Run]) -> None:
    """Send the committed runs' tasks (enqueue after commit).  If the broker is down, every run
    not yet sent is marked failed with the reason (none may sit queued forever), and 503."""
    for sent, run in enumerate(runs):
        try:
            enqueue_run(settings, run_id=run.id, queue=run.queue)
        except Exception as error:  # broker down
            for unsent in runs[sent:]:
                run_store.fail_unclaimed(
                    session,
                    run_id=unsent.id,
                    error="could not queue the run: the broker was unreachable",
                )
            log.warning("run %s not queued, broker unreachable: %r", run.id, error)
            detail = "broker unreachable: the run was not queued"
            raise HTTPException(503, detail=detail) from error


def cancel_runs(session: Session, settings: Settings, runs: list[Run]) -> None:
    """Cancel unfinished runs: queued ones at once, running ones at their worker's next step."""
    for run in runs:
        run_store.request_cancel(session, run=run)
    session.commit()
    for run in runs:
        notify(settings, run.id)
        wake_worker(settings, run.id)


def forget_runs(settings: Settings, run_ids: list[int]) -> None:
    """After deleting runs: remove their checkpoints and tell their streams and workers (a worker
    still training one stops at its next beat)."""
    for run_id in run_ids:
        settings.checkpoint_path(run_id).unlink(missing_ok=True)
        notify(settings, run_id)
        wake_worker(settings, run_id)


@router.post("/validate", response_model=RunCostPublic, responses=responses(413, 415, 422))
def validate_run(body: RunCreate, session: SessionDep, settings: SettingsDep) -> RunCostPublic:
    """What the run would cost (parameters, data set, probes) and the limits, or the same 422 as
    submitting it; nothing is stored."""
    resolve_task(body, session, settings)
    return check_limits(body, settings)


@router.get("", response_model=RunsPublic, responses=responses(422))
def list_runs(
    session: SessionDep,
    status: Annotated[RunStatus | None, Query()] = None,
    tag: Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)] = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    # the runs table's search, task filter and sort (issue 15)
    q: Annotated[
        str | None,
        Query(max_length=100, pattern=PRINTABLE, description="substring of name or tag"),
    ] = None,
    task: Annotated[
        str | None, Query(max_length=64, pattern=PRINTABLE, description="task kind")
    ] = None,
    sort: Annotated[RunSort, Query()] = RunSort.id,
    sort_series: Annotated[
        str | None,
        Query(
            max_length=140,
            pattern=rf"^{SERIES_NAME}:(last|min|max)$",
            description="order by a series summary instead of `sort`, e.g. `test.acc:max`",
        ),
    ] = None,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    summary: Annotated[
        str | None,
        Query(
            max_length=MAX_SUMMARY * 129,
            pattern=rf"^{SERIES_NAME}(,{SERIES_NAME}){{0,{MAX_SUMMARY - 1}}}$",
            description=f"comma-separated series (at most {MAX_SUMMARY}): their last/min/max "
            "per run",
        ),
    ] = None,
) -> RunsPublic:
    """Newest first; ``count`` is the number of runs matching the filters (for pagination)."""
    runs, count = run_store.list_runs(
        session,
        status=status.value if status else None,
        tag=tag,
        offset=offset,
        limit=limit,
        q=q,
        task=task,
        sort=sort.value,
        descending=order == "desc",
        by_series=tuple(sort_series.rsplit(":", 1)) if sort_series else None,
    )
    public = [to_public(r) for r in runs]
    names = summary.split(",") if summary else []
    if names:
        found = run_store.series_summaries(session, run_ids=[r.id for r in runs], names=names)
        for run in public:
            mine = found.get(run.id, {})
            run.summary = {name: SeriesSummary.model_validate(v) for name, v in mine.items()}
    return RunsPublic(data=public, count=count)


@router.get("/{run_id}", response_model=RunPublic, responses=responses(404, 422))
def read_run(run: RunDep) -> RunPublic:
    return to_public(run)


@router.patch("/{run_id}", response_model=RunPublic, responses=responses(404, 413, 415, 422))
def update_run(body: RunUpdate, run: RunDep, session: SessionDep) -> RunPublic:
    """Edits tags and notes, in any state (a running run's worker never writes them)."""
    run_store.update_run(session, run=run, changes=body.model_dump(exclude_unset=True))
    session.commit()
    return to_public(run)


@router.post("/{run_id}/cancel", response_model=RunPublic, responses=responses(404, 409, 415, 422))
def cancel_run(run: RunDep, session: SessionDep, settings: SettingsDep) -> RunPublic:
    if RunStatus(run.status).finished:
        raise HTTPException(status_code=409, detail=f"run {run.id} is already {run.status}")
    cancel_runs(session, settings, [run])
    return to_public(run)


@router.delete("/{run_id}", status_code=204, responses=responses(404, 415, 422))
def delete_run(run: RunDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Deletes the run and all it recorded; a worker still training it stops at its next beat."""
    run_store.delete_run(session, run_id=run.id)
    session.commit()
    forget_runs(settings, [run.id])
    return Response(status_code=204)


config_router = APIRouter(tags=["config"])


@config_router.get("/schema/run-config")
def run_config_schema() -> dict:
    """JSON schema of RunConfig: the dashboard builds its submit form from it."""
    return RunConfig.model_json_schema()


@config_router.get("/presets")
def presets(session: SessionDep, settings: SettingsDep) -> list[dict]:
    """The form's ready-made runs; the image presets on a worker's stored CIFAR-10 if one has
    it (``server.zoo_presets.on_paper_data``)."""
    try:
        cifar = find_manifest(CIFAR10_SUBSET["name"], session, settings)
    except DatasetError:  # an unreadable one on this disk: not offered
        cifar = None
    offered = [p | {"config": on_paper_data(p["config"], cifar)} for p in PRESETS]
    return jsonable_encoder(offered)
