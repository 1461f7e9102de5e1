"""Schemas of sweeps (``/api/sweeps``): a base RunConfig and axes over its config paths.

Grid: ``axes`` maps each path to a list of values, one run per point of their product.  Random
search: a path maps to a list (a value drawn uniformly) or to a range ``{low, high, log, int}``,
and ``count`` points are drawn from ``seed``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from server.schemas import PRINTABLE, RunConfig, RunPublic, Strict
from server.validation import field_error

# A config path: dotted field names (``optimizer.lr``, ``task.hidden``, ``seed``).
AXIS_PATH = r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*){0,5}$"
AxisPath = Annotated[str, Field(max_length=100, pattern=AXIS_PATH)]
# Values keep their JSON type (no lax coercion: ``"5"`` stays a string, ``true`` a boolean).
AxisValue = Annotated[
    StrictBool
    | StrictInt
    | StrictFloat
    | Annotated[StrictStr, Field(max_length=100, pattern=PRINTABLE)]
    | None,
    Field(union_mode="left_to_right"),
]
MAX_AXES = 6
MAX_VALUES = 100


class AxisRange(Strict):
    """A range of random search: uniform (or log-uniform) in [low, high], rounded with ``int``."""

    model_config = ConfigDict(populate_by_name=True)

    low: float
    high: float
    log: bool = Field(default=False, description="log-uniform (low > 0)")
    integer: bool = Field(default=False, alias="int", description="round to an integer")

    @model_validator(mode="after")
    def _ordered(self) -> AxisRange:
        if self.high < self.low:
            raise field_error(self, "high", message="must be at least low")
        if self.log and self.low <= 0:
            raise field_error(self, "low", message="must be positive for a log range")
        return self


AxisSpec = list[AxisValue] | AxisRange


class SweepBase(Strict):
    name: str | None = Field(default=None, max_length=150, pattern=PRINTABLE)
    base: RunConfig = Field(description="the config every run starts from")
    axes: dict[AxisPath, AxisSpec] = Field(
        min_length=1,
        max_length=MAX_AXES,
        description="config path → list of values (grid or random), or a range (random only)",
    )
    mode: Literal["grid", "random"] = "grid"
    count: int | None = Field(
        default=None, ge=1, le=10_000, description="random search: how many runs"
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="random search's draws")

    @model_validator(mode="after")
    def _mode_fields(self) -> SweepBase:
        for path, spec in self.axes.items():
            if isinstance(spec, list) and not 1 <= len(spec) <= MAX_VALUES:
                raise field_error(self, "axes", message=f"{path}: 1 to {MAX_VALUES} values")
        if self.mode == "random" and self.count is None:
            raise field_error(self, "count", message="random search needs a count")
        if self.mode == "grid":
            if self.count is not None:
                raise field_error(self, "count", message="only for mode random")
            ranges = [p for p, spec in self.axes.items() if isinstance(spec, AxisRange)]
            if ranges:
                raise field_error(self, "axes", message=f"{ranges[0]}: a range needs mode random")
        return self


class SweepCreate(SweepBase):
    """Body of ``POST /api/sweeps``."""


class SweepPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    config: dict = Field(description="the base RunConfig")
    axes: dict
    mode: str
    count: int = Field(description="runs made")
    seed: int | None
    created_at: datetime
    status: str = Field(description="from its runs: queued, running, completed, failed, ...")
    statuses: dict[str, int] = Field(description="how many of its runs are in each status")


class SweepDetailPublic(SweepPublic):
    runs: list[RunPublic]


class SweepsPublic(BaseModel):
    data: list[SweepPublic]
    count: int


class SweepPointPublic(BaseModel):
    run_id: int
    name: str
    status: str
    axes: dict[str, bool | int | float | str | None] = Field(
        description="this run's value per axis"
    )
    summary: float | None = Field(description="null where the run never reached it")


class SweepSummaryPublic(BaseModel):
    sweep_id: int
    what: str = Field(description="the summary, e.g. `hessian.lambda_max:mean` or an event")
    axes: list[str]
    points: list[SweepPointPublic]


class SweepPresetPublic(BaseModel):
    name: str
    description: str
    sweep: dict = Field(description="a SweepCreate body")
    summary: dict = Field(description="the phase diagram's query (GET .../summary parameters)")
    x: str = Field(description="the axis on the phase diagram's x")
