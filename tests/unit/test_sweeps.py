"""Expanding a sweep's axes into run configs: grid order, seeded random search, and the 422 that
names the axis of a bad path or value."""

from __future__ import annotations

import math

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from server.config import get_settings
from server.sweep_schemas import SweepCreate
from server.sweeps import MAX_SWEEP_RUNS, expand, random_points, set_path

BASE = {"task": {"kind": "gaussian_mixture"}, "steps": 20, "log_every": 5}


def sweep(axes: dict, **fields: object) -> SweepCreate:
    return SweepCreate.model_validate({"base": BASE, "axes": axes, **fields})


def error_of(body: SweepCreate) -> dict:
    with pytest.raises(RequestValidationError) as caught:
        expand(body, get_settings())
    (error,) = caught.value.errors()
    return error


def test_grid_is_the_product_with_each_value_at_its_path() -> None:
    body = sweep({"optimizer.lr": [0.02, 0.05, 0.1], "seed": [0, 1], "task.hidden": [8]})
    points = expand(body, get_settings())
    assert [p for p, _ in points] == [
        {"optimizer.lr": lr, "seed": seed, "task.hidden": 8}
        for lr in (0.02, 0.05, 0.1)
        for seed in (0, 1)
    ]
    for point, config in points:
        assert config.optimizer.lr == point["optimizer.lr"] and config.seed == point["seed"]
        assert config.task.hidden == 8 and config.steps == 20  # the base's other fields kept


def test_random_search_is_seeded_and_within_its_ranges() -> None:
    axes = {
        "optimizer.lr": {"low": 1e-4, "high": 1e-1, "log": True},
        "task.hidden": {"low": 4, "high": 64, "int": True},
        "seed": [0, 1, 2],
    }
    body = sweep(axes, mode="random", count=40, seed=7)
    first = [p for p, _ in expand(body, get_settings())]
    assert first == [p for p, _ in expand(body, get_settings())]  # same body, same runs
    assert first != random_points(body.axes, 40, 8)
    lrs = [p["optimizer.lr"] for p in first]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    # log-uniform: about half the draws below the geometric middle (1e-2.5), not ~3 %
    assert 8 <= sum(lr < 10**-2.5 for lr in lrs) <= 32
    assert all(isinstance(p["task.hidden"], int) and 4 <= p["task.hidden"] <= 64 for p in first)
    assert {p["seed"] for p in first} == {0, 1, 2}


@pytest.mark.parametrize(
    ("axes", "loc", "reason"),
    [
        ({"optimizer.lrr": [0.1]}, "optimizer.lrr", "no field 'lrr'"),
        ({"optimizer.lr": [0.1, -1]}, "optimizer.lr", "-1: Input should be greater than 0"),
        ({"task.hidden": ["wide"]}, "task.hidden", "Input should be an integer"),
        ({"probes.hessian.every": [5]}, "probes.hessian.every", "probes.hessian is off"),
        ({"seed": [0], "task.hidden": [10**6]}, "task.hidden", "less than or equal to 8192"),
        ({"seed.x": [1]}, "seed.x", "no field 'x'"),
    ],
)
def test_a_bad_point_is_422_at_its_axis(axes: dict, loc: str, reason: str) -> None:
    error = error_of(sweep(axes))
    assert error["loc"] == ("body", "axes", loc)
    assert reason in error["msg"]


def test_limits_are_checked_per_point() -> None:
    error = error_of(sweep({"task.n_train": [100, 10**6], "task.dim": [4096]}))
    assert error["loc"][:2] == ("body", "axes") and "OBS_MAX_DATASET" in error["msg"]


def test_the_number_of_runs_is_capped() -> None:
    side = math.isqrt(MAX_SWEEP_RUNS) + 1
    error = error_of(sweep({"seed": list(range(side)), "log_every": list(range(1, side + 1))}))
    assert error["loc"] == ("body", "axes") and f"{side * side} runs" in error["msg"]
    error = error_of(sweep({"seed": [0]}, mode="random", count=MAX_SWEEP_RUNS + 1))
    assert error["loc"] == ("body", "count")


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"axes": {"optimizer.lr": {"low": 0.1, "high": 1}}}, "axes"),  # a range in a grid
        ({"axes": {"seed": [0]}, "mode": "random"}, "count"),
        ({"axes": {"seed": [0]}, "count": 3}, "count"),
        ({"axes": {"Bad Path": [0]}}, "axes"),
        ({"axes": {"seed": []}}, "axes"),
        ({"axes": {"seed": ["5"]}, "base": {"seed": "5"}}, "base"),
        ({"axes": {"optimizer.lr": {"low": 2, "high": 1}}, "mode": "random", "count": 1}, "axes"),
    ],
)
def test_malformed_sweeps_are_rejected_by_the_schema(fields: dict, loc: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SweepCreate.model_validate({"base": BASE, **fields})
    assert caught.value.errors()[0]["loc"][0] == loc


def test_set_path_replaces_only_existing_fields() -> None:
    config = {"optimizer": {"lr": 0.1}, "probes": {"hessian": None}}
    set_path(config, "optimizer.lr", 0.5)
    assert config == {"optimizer": {"lr": 0.5}, "probes": {"hessian": None}}
    with pytest.raises(ValueError, match="no field 'momentum'"):
        set_path(config, "optimizer.momentum", 0.9)
    with pytest.raises(ValueError, match="probes.hessian is off"):
        set_path(config, "probes.hessian.every", 5)
