"""``GET /api/runs/{id}/explain?step=``: the "explain this step" card of a loss spike."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from server.api.deps import STEP_MAX, RunDep, SessionDep
from server.api.results import to_json
from server.explain_schemas import EXPLAIN, ExplainPublic
from server.store.results import read_arrays, unpack_arrays

router = APIRouter(prefix="/runs/{run_id}", tags=["explain"])


@router.get("/explain", response_model=ExplainPublic)
def explain_step(
    run: RunDep,
    session: SessionDep,
    step: Annotated[int, Query(ge=0, le=STEP_MAX, description="a loss.spike event's step")],
) -> ExplainPublic:
    """The card the worker stored when the loss spike at ``step`` fired."""
    row = read_arrays(session, run_id=run.id, probe=EXPLAIN, step=step)
    if row is None:
        raise HTTPException(
            404,
            detail=(
                f"run {run.id} has no explanation at step {step}: cards are stored at the steps "
                f"of loss.spike events of runs with the opposing probe "
                f"(GET /api/runs/{run.id}/arrays/{EXPLAIN} lists them)"
            ),
        )
    randoms = to_json(unpack_arrays(row.data)["random_alignment"])  # NaN as null
    groups = [
        group | {"random_alignment": group["random_alignment"] | {"values": values}}
        for group, values in zip(row.meta["groups"], randoms, strict=True)
    ]
    return ExplainPublic.model_validate(row.meta | {"groups": groups})
