"""Scalar series of a run: downsampled reads and CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from server.api.deps import STEP_MAX, MaxPoints, RunDep, SessionDep
from server.api.stream import encode_cursor
from server.schemas import PRINTABLE, MetricsPublic, SeriesPoints
from server.store.metrics import SeriesData, iter_points, json_safe, list_series, read_series
from server.store.results import last_event_id

router = APIRouter(prefix="/runs/{run_id}", tags=["metrics"])
SeriesNames = Annotated[str, StringConstraints(max_length=200, pattern=PRINTABLE)]


@router.get("/metrics", response_model=MetricsPublic, response_model_exclude_unset=True)
def read_metrics(
    run: RunDep,
    session: SessionDep,
    names: Annotated[
        list[SeriesNames],
        Query(max_length=64, description="series names; comma-separated or repeated; none: all"),
    ] = [],  # noqa: B006 - FastAPI copies a parameter's default
    since_step: Annotated[int | None, Query(ge=0, le=STEP_MAX)] = None,
    max_points: MaxPoints = 2000,
    with_time: Annotated[
        bool,
        Query(description="add each point's wall time (``wall_times``, same points as ``steps``)"),
    ] = False,
) -> MetricsPublic:
    """Series points; above ``max_points`` the extremes of each step bucket are kept.

    ``cursor`` resumes a live stream (``/stream?cursor=…``) right after the points returned here
    and after the run's current events (read those from ``/events``).
    """
    available = [s.name for s in list_series(session, run_id=run.id)]
    wanted = [n for item in names for n in item.split(",") if n] if names else available
    series = [
        read_series(
            session,
            run_id=run.id,
            name=name,
            since_step=since_step,
            max_points=max_points or None,
            with_time=with_time,
        )
        for name in wanted
    ]
    return MetricsPublic(
        run_id=run.id,
        series=[_points(s) for s in series],
        available=available,
        cursor=encode_cursor(
            {s.name: s.steps[-1] for s in series if s.steps},
            last_event_id(session, run_id=run.id),
        ),
    )


def _points(data: SeriesData) -> SeriesPoints:
    """The default shape has no ``wall_times`` key at all (the response drops unset fields)."""
    fields = vars(data).copy()
    if fields["wall_times"] is None:
        del fields["wall_times"]
    return SeriesPoints(**fields)


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
