"""Expanding a sweep's axes into run configs: a grid's product or a seeded random search.

Every point is a full RunConfig, validated (and checked against the limits) before any run is
stored, so a sweep is created whole or not at all; an error is a 422 at ``axes.<path>`` with the
value and the reason.  (Not to be confused with ``server.sweep``, the SDK runs' lease sweep.)
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from server.api.errors import invalid
from server.config import Settings
from server.limits import check_limits
from server.schemas import RunConfig
from server.sweep_schemas import AxisRange, SweepCreate

MAX_SWEEP_RUNS = 256  # runs per sweep: a typo in an axis must not queue thousands of runs
Point = dict[str, Any]


def grid_points(axes: dict[str, list]) -> list[Point]:
    """Every combination, the last axis varying fastest."""
    paths = list(axes)
    return [dict(zip(paths, values, strict=True)) for values in itertools.product(*axes.values())]


def _draw(rng: random.Random, spec: list | AxisRange) -> Any:
    if isinstance(spec, list):
        return spec[rng.randrange(len(spec))]
    if spec.log:
        value = math.exp(rng.uniform(math.log(spec.low), math.log(spec.high)))
    else:
        value = rng.uniform(spec.low, spec.high)
    return round(value) if spec.integer else value


def random_points(axes: dict[str, list | AxisRange], count: int, seed: int) -> list[Point]:
    """``count`` points drawn from ``seed``: the same body always makes the same runs."""
    rng = random.Random(seed)
    return [{path: _draw(rng, spec) for path, spec in axes.items()} for _ in range(count)]


def set_path(config: dict, path: str, value: Any) -> None:
    """Set the dotted ``path`` of a config dict; every field on it must exist already (the base
    config is dumped whole, so a missing one is a typo or a probe that is off)."""
    names = path.split(".")
    node: Any = config
    for depth, name in enumerate(names):
        where = ".".join(names[:depth])
        if node is None:
            raise ValueError(f"{where} is off in the base config; enable it there first")
        if not isinstance(node, dict) or name not in node:
            raise ValueError(f"no field {name!r} in the config" + (f" at {where}" if where else ""))
        if depth == len(names) - 1:
            node[name] = value
        else:
            node = node[name]


def _axis_of(loc: tuple, point: Point, task_kind: str) -> str:
    """The axis a validation error at ``loc`` (relative to RunConfig) concerns."""
    parts = [str(p) for p in loc if p != "body"]
    if parts[:2] == ["task", task_kind]:  # the discriminated union's tag
        del parts[1]
    for path in point:
        axis = path.split(".")
        if parts[: len(axis)] == axis or axis[: len(parts)] == parts:
            return path
    return next(iter(point))


def _point_error(point: Point, path: str, msg: str) -> RequestValidationError:
    return invalid(("body", "axes", path), f"{point[path]!r}: {msg}")


def point_config(base: dict, point: Point, settings: Settings) -> RunConfig:
    """The RunConfig of one point, validated and within the limits, or a 422 at its axis."""
    config = copy.deepcopy(base)
    for path, value in point.items():
        try:
            set_path(config, path, value)
        except ValueError as error:
            raise invalid(("body", "axes", path), str(error)) from None
    kind = str(config.get("task", {}).get("kind"))
    try:
        run_config = RunConfig.model_validate(config)
    except ValidationError as error:
        first = error.errors()[0]
        raise _point_error(point, _axis_of(first["loc"], point, kind), first["msg"]) from None
    try:
        check_limits(run_config, settings)
    except RequestValidationError as error:
        first = error.errors()[0]
        raise _point_error(point, _axis_of(first["loc"], point, kind), first["msg"]) from None
    return run_config


def points(body: SweepCreate) -> list[Point]:
    if body.mode == "grid":
        return grid_points(body.axes)  # type: ignore[arg-type]  # grid axes are lists (schema)
    return random_points(body.axes, body.count or 0, body.seed)


def label(point: Point) -> str:
    """``lr=0.1 seed=0``: a point as the runs' names show it."""
    return " ".join(f"{path.rsplit('.', 1)[-1]}={value}" for path, value in point.items())


def expand(body: SweepCreate, settings: Settings) -> list[tuple[Point, RunConfig]]:
    """Each point with its validated RunConfig; 422 above MAX_SWEEP_RUNS or on any bad point."""
    grid_size = math.prod(len(v) for v in body.axes.values() if isinstance(v, list))
    size = body.count if body.mode == "random" else grid_size
    if size and size > MAX_SWEEP_RUNS:
        where = "count" if body.mode == "random" else "axes"
        raise invalid(("body", where), f"{size} runs, above the limit of {MAX_SWEEP_RUNS}")
    base = body.base.model_dump(mode="json")
    return [(point, point_config(base, point, settings)) for point in points(body)]
