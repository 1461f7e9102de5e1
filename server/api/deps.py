"""Dependencies shared by every route, as ``Annotated`` aliases."""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.dependencies.models import Dependant
from pydantic import AfterValidator
from sqlalchemy.orm import Session

from server.api.errors import invalid
from server.config import Settings, get_settings
from server.db import get_sessionmaker
from server.models import Run, Sweep

# Largest values the columns hold (run and event ids: INTEGER; steps: BIGINT).  A larger value
# in a path cannot name anything (404); in a query it is out of the documented range (422).
# Checked before any query: PostgreSQL rejects such a parameter outright, SQLite cannot bind it.
ID_MAX = 2**31 - 1
STEP_MAX = 2**63 - 1

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with get_sessionmaker(settings.resolved_database_url)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _load(session: Session, model: type[Run | Sweep], ident: int, what: str) -> Run | Sweep:
    found = session.get(model, ident) if ident <= ID_MAX else None
    if found is None:
        raise HTTPException(status_code=404, detail=f"{what} {ident} not found")
    return found


def get_run(session: SessionDep, run_id: Annotated[int, Path(ge=1)]) -> Run:
    return _load(session, Run, run_id, "run")


RunDep = Annotated[Run, Depends(get_run)]


def get_sweep(session: SessionDep, sweep_id: Annotated[int, Path(ge=1)]) -> Sweep:
    return _load(session, Sweep, sweep_id, "sweep")


SweepDep = Annotated[Sweep, Depends(get_sweep)]


def get_step(step: Annotated[int, Path(ge=0, description="training step")]) -> int:
    """A step in a path; beyond the column's range no result can be stored there (404)."""
    if step > STEP_MAX:
        raise HTTPException(status_code=404, detail=f"no result at step {step}")
    return step


StepDep = Annotated[int, Depends(get_step)]


def _points_budget(max_points: int) -> int:
    if 0 < max_points < 4:  # a bucket keeps its first, last, min and max point
        raise ValueError("must be 0 (every point) or at least 4")
    return max_points


MaxPoints = Annotated[
    int,
    Query(
        ge=0,
        le=1_000_000,
        description="downsample above this (≥ 4); 0: every point",
        json_schema_extra={"not": {"minimum": 1, "maximum": 3}},
    ),
    AfterValidator(_points_budget),
]


def _repeatable(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _repeatable(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_repeatable(a) for a in get_args(annotation))
    return origin in (list, tuple, set, frozenset)


def _list_parameters(dependant: Dependant) -> frozenset[str]:
    """Query parameters of a route (and its dependencies) that take several values."""
    names = {q.alias for q in dependant.query_params if _repeatable(q.field_info.annotation)}
    for sub in dependant.dependencies:
        names |= _list_parameters(sub)
    return frozenset(names)


def single_valued_query(request: Request) -> None:
    """A one-value query parameter given twice is 422: FastAPI would silently keep the last."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    lists = _list_parameters(dependant) if dependant is not None else frozenset()
    counts = Counter(key for key, _ in request.query_params.multi_items())
    for key, count in counts.items():
        if count > 1 and key not in lists:
            raise invalid(("query", key), "given more than once")
