"""Schema of the "explain this step" card of a loss spike (``GET /api/runs/{id}/explain``).

The worker computes the card when the spike fires (``worker.probe_hooks.explain``) and stores it
as the array result ``opposing.explain`` at the spike's step; docs/timeline.md says what each
number is.  Non-finite floats are stored as null, hence the optional floats.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

EXPLAIN = "opposing.explain"  # the array results' probe name (the worker's, too)


class SpikePublic(BaseModel):
    loss: float | None = Field(description="the train loss at the spike's step")
    median: float | None = Field(description="running median of the train loss before it")
    mad: float | None = Field(description="scaled median absolute deviation of that window")
    threshold: float | None = Field(description="the detector's threshold it crossed")
    size: float | None = Field(description="loss / median")


class SharpnessAtPublic(BaseModel):
    step: int = Field(description="the probe step whose θ was measured")
    sharpness: float | None = Field(
        description="λ_max of the monitor-set loss (Adam: of the preconditioned Hessian)"
    )
    lambda_max: float | None = Field(None, description="raw λ_max (at the later probe step)")


class SharpnessPublic(BaseModel):
    threshold: float = Field(description="the optimizer's stability threshold (SGD: 2/η)")
    preconditioned: bool = Field(description="the threshold applies to λ_max(P⁻¹H) (Adam)")
    lr: float
    before: SharpnessAtPublic | None = Field(
        description="at the probe step before the spike; null when the worker no longer held it"
    )
    at: SharpnessAtPublic = Field(description="at the probe step after the spike")


class RandomAlignmentPublic(BaseModel):
    mean: float | None
    max: float | None
    n: int = Field(description="random groups of the same size drawn")
    values: list[float | None]


class ExplainGroupPublic(BaseModel):
    id: int = Field(description="the group's id at the probe step (GET /outliers/{probe_step})")
    kind: str = Field(description="rising or falling")
    pair: int | None = Field(description="its pair among the card's, null if unpaired")
    size: int
    members: list[int] = Field(description="training-set indices")
    majority_label: int | None
    share: float | None = Field(description="its share of the monitor set's sum |Δloss|")
    mean_change: float | None
    alignment: float | None = Field(
        description="|cos| of the group's mean-loss gradient with the top Hessian eigenvector"
    )
    random_alignment: RandomAlignmentPublic
    planted: int | None = Field(None, description="planted members (synthetic tasks)")


class ExplainPublic(BaseModel):
    step: int = Field(description="the spike's step")
    probe_step: int = Field(description="the probe step where the card was computed (after it)")
    prev_step: int = Field(description="the probe step before it")
    spike: SpikePublic
    sharpness: SharpnessPublic
    paired: bool = Field(description="the groups form opposing pairs (else: the largest ones)")
    total_change: float | None = Field(description="sum |Δloss| over the monitor set")
    share: float | None = Field(description="the named groups' share of it")
    groups: list[ExplainGroupPublic]
    cost: dict[str, float]
