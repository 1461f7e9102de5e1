"""Sweeps: submit one run per point of a grid or random search, list, read, cancel, delete, and
the per-run summaries its phase diagram draws."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from sqlalchemy.orm import Session

from server.api.auth import limit_submissions
from server.api.deps import ID_MAX, SessionDep, SettingsDep, SweepDep
from server.api.errors import invalid, responses
from server.api.runs import cancel_runs, forget_runs, queue_runs
from server.api.runs import to_public as run_public
from server.models import Sweep
from server.schemas import PRINTABLE
from server.store import sweeps as sweep_store
from server.sweep_presets import SWEEP_PRESETS
from server.sweep_schemas import (
    SweepCreate,
    SweepDetailPublic,
    SweepPointPublic,
    SweepPresetPublic,
    SweepPublic,
    SweepsPublic,
    SweepSummaryPublic,
)
from server.sweeps import expand, label

router = APIRouter(prefix="/sweeps", tags=["sweeps"])
EVENT_KIND = r"[A-Za-z0-9_.:]{1,64}"


def to_public(sweep: Sweep, counts: dict[str, int]) -> SweepPublic:
    data = {c.name: getattr(sweep, c.name) for c in Sweep.__table__.columns}
    status = sweep_store.sweep_status(counts)
    return SweepPublic.model_validate({**data, "status": status, "statuses": counts})


def detail(session: Session, sweep: Sweep) -> SweepDetailPublic:
    runs = sweep_store.sweep_runs(session, sweep.id)
    counts = sweep_store.status_counts(session, [sweep.id])[sweep.id]
    public = to_public(sweep, counts).model_dump()
    return SweepDetailPublic(**public, runs=[run_public(r) for r in runs])


@router.post(
    "",
    status_code=201,
    response_model=SweepDetailPublic,
    responses=responses(413, 415, 422, 429, 503),
    dependencies=[Depends(limit_submissions)],
)
def create_sweep(
    body: SweepCreate, session: SessionDep, settings: SettingsDep
) -> SweepDetailPublic:
    """All runs are validated first, stored and committed together, then queued."""
    points = expand(body, settings)
    base = body.base
    name = body.name or f"{base.name or f'{base.task.kind}-{base.optimizer.name}'} sweep"
    sweep, runs = sweep_store.create_sweep(
        session,
        name=name,
        base=base.model_dump(mode="json"),
        axes=body.model_dump(mode="json", by_alias=True)["axes"],
        mode=body.mode,
        seed=body.seed if body.mode == "random" else None,
        runs=[(f"{name} {label(point)}", config) for point, config in points],
    )
    session.commit()
    queue_runs(session, settings, runs)
    return detail(session, sweep)


@router.get("", response_model=SweepsPublic, responses=responses(422))
def list_sweeps(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=ID_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SweepsPublic:
    """Newest first, each with its runs' status counts (one grouped query for the page)."""
    sweeps, count = sweep_store.list_sweeps(session, offset=offset, limit=limit)
    counts = sweep_store.status_counts(session, [s.id for s in sweeps])
    return SweepsPublic(data=[to_public(s, counts[s.id]) for s in sweeps], count=count)


@router.get("/presets", response_model=list[SweepPresetPublic])
def presets() -> list[SweepPresetPublic]:
    """Sweeps that reproduce papers' figures on a CPU, with their phase diagram's query."""
    return SWEEP_PRESETS


@router.get("/{sweep_id}", response_model=SweepDetailPublic, responses=responses(404, 422))
def read_sweep(sweep: SweepDep, session: SessionDep) -> SweepDetailPublic:
    return detail(session, sweep)


@router.post(
    "/{sweep_id}/cancel", response_model=SweepDetailPublic, responses=responses(404, 409, 422)
)
def cancel_sweep(sweep: SweepDep, session: SessionDep, settings: SettingsDep) -> SweepDetailPublic:
    """Cancels every unfinished run of the sweep; 409 when none is left."""
    runs = sweep_store.sweep_runs(session, sweep.id, unfinished=True)
    if not runs:
        raise HTTPException(409, detail=f"sweep {sweep.id} has no unfinished run")
    cancel_runs(session, settings, runs)
    return detail(session, sweep)


@router.delete("/{sweep_id}", status_code=204, responses=responses(404, 422))
def delete_sweep(sweep: SweepDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Deletes the sweep and all its runs."""
    run_ids = sweep_store.delete_sweep(session, sweep_id=sweep.id)
    session.commit()
    forget_runs(settings, run_ids)
    return Response(status_code=204)


@router.get("/{sweep_id}/summary", response_model=SweepSummaryPublic, responses=responses(404, 422))
def summarize_sweep(
    sweep: SweepDep,
    session: SessionDep,
    series: Annotated[
        str | None, Query(max_length=128, pattern=PRINTABLE, description="a series name")
    ] = None,
    stat: Annotated[
        Literal["last", "min", "max", "mean", "first_cross"], Query(description="of the series")
    ] = "last",
    value: Annotated[float | None, Query(description="first_cross: the value crossed")] = None,
    direction: Annotated[
        Literal["above", "below"], Query(description="first_cross: reaching ≥ or ≤ value")
    ] = "above",
    tail: Annotated[
        float, Query(gt=0, le=1, description="mean: over this last fraction of the steps")
    ] = 1.0,
    since_event: Annotated[
        str | None,
        Query(
            pattern=rf"^{EVENT_KIND}$",
            description="mean: from this event's first step on (instead of tail)",
        ),
    ] = None,
    event: Annotated[
        str | None,
        Query(
            pattern=rf"^{EVENT_KIND}(-{EVENT_KIND})?$",
            description="an event's first step, or `a-b`: event a's step minus event b's",
        ),
    ] = None,
) -> SweepSummaryPublic:
    """One summary per run (null where the run never reached it) with its axes' values."""
    if (series is None) == (event is None):
        raise invalid(("query", "series"), "give exactly one of series or event")
    if series is not None:
        if stat == "first_cross" and (value is None or not math.isfinite(value)):
            raise invalid(("query", "value"), "first_cross needs a finite value")
        found = sweep_store.series_summary(
            session,
            sweep_id=sweep.id,
            name=series,
            stat=stat,
            value=value,
            below=direction == "below",
            tail=tail,
            since_event=since_event,
        )
        what = f"{series}:{stat}"
    else:
        found = event_summary(session, sweep.id, event or "")
        what = event or ""
    points = [
        SweepPointPublic(
            run_id=run.id,
            name=run.name,
            status=run.status,
            axes={path: sweep_store.config_value(run.config, path) for path in sweep.axes},
            summary=found.get(run.id),
        )
        for run in sweep_store.sweep_runs(session, sweep.id)
    ]
    return SweepSummaryPublic(sweep_id=sweep.id, what=what, axes=list(sweep.axes), points=points)


def event_summary(session: Session, sweep_id: int, event: str) -> dict[int, float | None]:
    """An event's first step per run, or for ``a-b`` the difference where both happened."""
    kinds = event.split("-")
    steps = [sweep_store.event_steps(session, sweep_id=sweep_id, kind=k) for k in kinds]
    if len(steps) == 1:
        return {run_id: float(step) for run_id, step in steps[0].items()}
    first, second = steps
    return {
        run_id: float(step - second[run_id]) for run_id, step in first.items() if run_id in second
    }
