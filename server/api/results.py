"""Array-valued probe results (spectra, surfaces, per-example losses, outlier groups).

Generic routes serve any probe's arrays; the brief's named routes ``/spectra`` and ``/landscapes``
are the same routes bound to one probe each.  ``/outliers`` has its own router
(``server.api.outliers``): groups and their members are served as JSON, not as arrays.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Path

from server.api.deps import RunDep, SessionDep, StepDep
from server.schemas import ArrayResultPublic, ArrayStepsPublic
from server.store.results import list_arrays, read_arrays, unpack_arrays

router = APIRouter(prefix="/runs/{run_id}", tags=["results"])
ProbeName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
NAMED = {"spectra": "hessian", "landscapes": "landscape"}


def to_json(array: np.ndarray) -> Any:
    """Lists with NaN and ±inf as null (JSON has neither)."""
    if array.dtype.kind == "f":
        return (
            [to_json(a) for a in array]
            if array.ndim > 1
            else [v if math.isfinite(v) else None for v in array.tolist()]
        )
    return array.tolist()


def steps_of(session: SessionDep, run_id: int, probe: str) -> ArrayStepsPublic:
    rows = list_arrays(session, run_id=run_id, probe=probe)
    return ArrayStepsPublic(probe=probe, steps=[s for s, _ in rows], meta=[m for _, m in rows])


def result_at(session: SessionDep, run_id: int, probe: str, step: int) -> ArrayResultPublic:
    row = read_arrays(session, run_id=run_id, probe=probe, step=step)
    if row is None:
        raise HTTPException(404, detail=f"run {run_id} has no {probe} result at step {step}")
    arrays = {k: to_json(v) for k, v in unpack_arrays(row.data).items()}
    return ArrayResultPublic(probe=probe, step=step, meta=row.meta, arrays=arrays)


@router.get("/arrays/{probe}", response_model=ArrayStepsPublic)
def array_steps(run: RunDep, session: SessionDep, probe: ProbeName) -> ArrayStepsPublic:
    """The steps (and small metadata) at which ``probe`` stored arrays."""
    return steps_of(session, run.id, probe)


@router.get("/arrays/{probe}/{step}", response_model=ArrayResultPublic)
def array_at(
    run: RunDep, session: SessionDep, probe: ProbeName, step: StepDep
) -> ArrayResultPublic:
    return result_at(session, run.id, probe, step)


def _bind(route: str, probe: str) -> None:
    def steps(run: RunDep, session: SessionDep) -> ArrayStepsPublic:
        return steps_of(session, run.id, probe)

    def at(run: RunDep, session: SessionDep, step: StepDep) -> ArrayResultPublic:
        return result_at(session, run.id, probe, step)

    router.add_api_route(
        f"/{route}",
        steps,
        methods=["GET"],
        response_model=ArrayStepsPublic,
        name=f"{route}_steps",
        summary=f"Steps with {probe} results",
    )
    router.add_api_route(
        f"/{route}/{{step}}",
        at,
        methods=["GET"],
        response_model=ArrayResultPublic,
        name=f"{route}_at",
        summary=f"The {probe} result at a step",
    )


for _route, _probe in NAMED.items():
    _bind(_route, _probe)
