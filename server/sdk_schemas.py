"""Request and response bodies of the SDK endpoints (``server.api.sdk``)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = Annotated[str, Field(min_length=1, max_length=128)]
MAX_POINTS = 200_000  # points per batch request


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SdkRunCreate(Strict):
    """Create a run streamed by a user's process, or (``resume``) continue one of them.

    ``key`` identifies the client process: the same key gives the same run, so a create that is
    retried after a lost answer does not make two runs."""

    key: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=32
    )
    resume: int | None = Field(default=None, ge=1)
    total_steps: int | None = Field(default=None, ge=0)


class MetricColumns(Strict):
    name: list[Name] = Field(max_length=MAX_POINTS)
    step: list[Annotated[int, Field(ge=0, lt=2**62)]] = Field(max_length=MAX_POINTS)
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
    step: int = Field(ge=0, lt=2**62)
    kind: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict)


class ArraysIn(Strict):
    probe: str = Field(min_length=1, max_length=64)
    step: int = Field(ge=0, lt=2**62)
    meta: dict[str, Any] = Field(default_factory=dict)
    data: str = Field(description="base64 of an .npz file (no pickles)")


class SdkBatch(Strict):
    """Points, events and array results; every write is an upsert by (run, name/kind, step)."""

    metrics: MetricColumns | None = None
    events: list[EventIn] = Field(default_factory=list, max_length=10_000)
    arrays: list[ArraysIn] = Field(default_factory=list, max_length=1_000)
    step: int = Field(default=0, ge=0, lt=2**62, description="the client's current step")
    probes: dict[Annotated[str, Field(max_length=64)], dict[str, Any]] | None = Field(
        default=None,
        description="configs of the probes the script runs: merged into the run's "
        "config.probes, so the dashboard shows their panels as for a service run",
    )


class SdkHeartbeat(Strict):
    key: str = Field(min_length=1, max_length=200)
    step: int = Field(ge=0, lt=2**62)


class SdkFinish(Strict):
    status: Literal["completed", "failed"]
    error: str | None = Field(default=None, max_length=1_000_000)
    step: int = Field(ge=0, lt=2**62)


class HeartbeatPublic(BaseModel):
    status: str
    cancel_requested: bool
