"""Scalar series: downsampled reads of a run or of several (a comparison), and CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, TypeVar

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints
from sqlalchemy import select

from server.api.deps import ID_MAX, STEP_MAX, MaxPoints, RunDep, SessionDep
from server.api.stream import encode_cursor
from server.models import Run
from server.schemas import (
    PRINTABLE,
    ComparedMetricsPublic,
    MetricsPublic,
    RunSeriesPublic,
    SeriesPoints,
)
from server.store.metrics import iter_points, json_safe
from server.store.reads import RunSeries, SeriesData, read_runs
from server.store.results import last_event_id

router = APIRouter(prefix="/runs/{run_id}", tags=["metrics"])
compare_router = APIRouter(tags=["metrics"])
SeriesNames = Annotated[str, StringConstraints(max_length=200, pattern=PRINTABLE)]
NamesQuery = Annotated[
    list[SeriesNames],
    Query(max_length=64, description="series names; comma-separated or repeated; none: all"),
]
WithTime = Annotated[
    bool,
    Query(description="add each point's wall time (``wall_times``, same points as ``steps``)"),
]
M = TypeVar("M", bound=RunSeriesPublic)
MAX_COMPARED = 20  # runs per comparison request
RUN_ID = r"[1-9][0-9]{0,9}"


def _names(names: list[str]) -> list[str] | None:
    """The names asked for, split at commas (``None``: every series)."""
    return [n for item in names for n in item.split(",") if n] or None


@router.get("/metrics", response_model=MetricsPublic, response_model_exclude_unset=True)
def read_metrics(
    run: RunDep,
    session: SessionDep,
    names: NamesQuery = [],  # noqa: B006 - FastAPI copies a parameter's default
    since_step: Annotated[int | None, Query(ge=0, le=STEP_MAX)] = None,
    max_points: MaxPoints = 2000,
    with_time: WithTime = False,
) -> MetricsPublic:
    """Series points; above ``max_points`` the extremes of each step bucket are kept.

    ``cursor`` resumes a live stream (``/stream?cursor=…``) right after the points returned here
    and after the run's current events (read those from ``/events``).
    """
    read = read_runs(
        session,
        run_ids=[run.id],
        names=_names(names),
        since_step=since_step,
        max_points=max_points or None,
        with_time=with_time,
    )[run.id]
    return _public(
        MetricsPublic,
        run.id,
        read,
        cursor=encode_cursor(
            {s.name: s.steps[-1] for s in read.series if s.steps},
            last_event_id(session, run_id=run.id),
        ),
    )


@compare_router.get(
    "/metrics", response_model=ComparedMetricsPublic, response_model_exclude_unset=True
)
def compare_metrics(
    session: SessionDep,
    runs: Annotated[
        str,
        Query(
            max_length=11 * MAX_COMPARED,
            pattern=rf"^{RUN_ID}(,{RUN_ID}){{0,{MAX_COMPARED - 1}}}$",
            description=f"comma-separated run ids, at most {MAX_COMPARED}",
        ),
    ],
    names: NamesQuery = [],  # noqa: B006 - FastAPI copies a parameter's default
    max_points: MaxPoints = 2000,
    with_time: WithTime = False,
) -> ComparedMetricsPublic:
    """The series of several runs in one request (the run page's comparison), each downsampled
    as ``/runs/{run_id}/metrics`` does: one read of the pyramid for all of them instead of a
    request per run.  An unknown run is a 404 naming it."""
    ids = list(dict.fromkeys(map(int, runs.split(","))))
    known = [i for i in ids if i <= ID_MAX]  # a larger id names no run (the column's range)
    found = set(session.scalars(select(Run.id).where(Run.id.in_(known))))
    if missing := [i for i in ids if i not in found]:
        raise HTTPException(404, detail=f"run {', '.join(map(str, missing))} not found")
    read = read_runs(
        session,
        run_ids=ids,
        names=_names(names),
        max_points=max_points or None,
        with_time=with_time,
    )
    return ComparedMetricsPublic(runs=[_public(RunSeriesPublic, i, read[i]) for i in ids])


def _public(model: type[M], run_id: int, read: RunSeries, **extra: str) -> M:
    series = [_points(s) for s in read.series]
    return model(run_id=run_id, series=series, available=read.available, **extra)


def _points(data: SeriesData) -> SeriesPoints:
    """The default shape has no ``wall_times`` key at all (the response drops unset fields).
    The points come from the database as the schema's types: built without validation."""
    fields = vars(data).copy()
    if fields["wall_times"] is None:
        del fields["wall_times"]
    return SeriesPoints.model_construct(**fields)


@router.get("/export.csv", response_class=StreamingResponse)
def export_csv(run: RunDep, session: SessionDep) -> StreamingResponse:
    """Every point of the run as ``name,step,value,wall_time`` rows (long format)."""

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["name", "step", "value", "wall_time"])
        for i, point in enumerate(iter_points(session, run_id=run.id)):
            value = json_safe(point.value)
            writer.writerow(
                [point.name, point.step, "" if value is None else repr(value), point.wall_time]
            )
            if i % 5000 == 4999:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    filename = f"run-{run.id}-metrics.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
