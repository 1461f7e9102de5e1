"""Request and response bodies of the SDK endpoints (``server.api.sdk``)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from server.validation import PRINTABLE

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=PRINTABLE)]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
MAX_POINTS = 200_000  # points per batch request
RUN_STEP_MAX = 2**31 - 1  # the run's own step and total (an integer column)
POINT_STEP_MAX = 2**62  # steps of points, events and arrays (bigint columns)


def storable(value: Any, where: str = "") -> Any:  # noqa: ANN401 - any JSON value
    """Free-form JSON (a script's config, event payloads, array metadata) as a database can keep
    it: finite numbers (Python's JSON reader accepts NaN and Infinity) and no NUL characters."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'value'}: non-finite number")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where or 'value'}: NUL character")
    if isinstance(value, dict):
        for key, item in value.items():
            storable(key, where)
            storable(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            storable(item, f"{where}[{index}]")
    return value


FreeJson = Annotated[dict[str, Any], AfterValidator(storable)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SdkRunCreate(Strict):
    """Create a run streamed by a user's process, or (``resume``) continue one of them.

    ``key`` identifies the client process: the same key gives the same run, so a create that is
    retried after a lost answer does not make two runs."""

    key: str = Field(min_length=1, max_length=200, pattern=PRINTABLE)
    name: str | None = Field(default=None, max_length=200, pattern=PRINTABLE)
    config: FreeJson = Field(default_factory=dict)
    tags: list[Label] = Field(default_factory=list, max_length=32)
    resume: int | None = Field(default=None, ge=1, le=RUN_STEP_MAX)
    total_steps: int | None = Field(default=None, ge=0, le=RUN_STEP_MAX)


class MetricColumns(Strict):
    name: list[Name] = Field(max_length=MAX_POINTS)
    step: list[Annotated[int, Field(ge=0, lt=POINT_STEP_MAX)]] = Field(max_length=MAX_POINTS)
    value: list[float | None] = Field(max_length=MAX_POINTS)
    wall_time: list[float] = Field(max_length=MAX_POINTS)

    @model_validator(mode="after")
    def _same_length(self) -> MetricColumns:
        n = len(self.name)
        if not len(self.step) == len(self.value) == len(self.wall_time) == n:
            raise ValueError("name, step, value and wall_time must have the same length")
        if not all(math.isfinite(w) for w in self.wall_time):
            raise ValueError("wall_time must be finite")
        return self


class EventIn(Strict):
    step: int = Field(ge=0, lt=POINT_STEP_MAX)
    kind: Label
    payload: FreeJson = Field(default_factory=dict)


class ArraysIn(Strict):
    probe: Label
    step: int = Field(ge=0, lt=POINT_STEP_MAX)
    meta: FreeJson = Field(default_factory=dict)
    data: str = Field(description="base64 of an .npz file (no pickles)")


class SdkBatch(Strict):
    """Points, events and array results; every write is an upsert by (run, name/kind, step)."""

    metrics: MetricColumns | None = None
    events: list[EventIn] = Field(default_factory=list, max_length=10_000)
    arrays: list[ArraysIn] = Field(default_factory=list, max_length=1_000)
    step: int = Field(default=0, ge=0, le=RUN_STEP_MAX, description="the client's current step")
    probes: dict[Label, FreeJson] | None = Field(
        default=None,
        description="configs of the probes the script runs: merged into the run's "
        "config.probes, so the dashboard shows their panels as for a service run",
    )


class SdkHeartbeat(Strict):
    key: str = Field(min_length=1, max_length=200, pattern=PRINTABLE)
    step: int = Field(ge=0, le=RUN_STEP_MAX)


class SdkFinish(Strict):
    status: Literal["completed", "failed"]
    error: str | None = Field(default=None, max_length=1_000_000, pattern=r"^[^\x00]*$")
    step: int = Field(ge=0, le=RUN_STEP_MAX)


class HeartbeatPublic(BaseModel):
    status: str
    cancel_requested: bool
