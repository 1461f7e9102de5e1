"""A zoo model end to end: submitted over HTTP, stored, trained by a real worker (``observatory
up``), its initial test loss that of the model the submit-time config describes."""

from __future__ import annotations

import math

import httpx
import pytest

from server.schemas import RunConfig
from tests.conftest import Service
from worker.training.loop import evaluate
from worker.training.tasks import build_task

pytestmark = pytest.mark.integration

CONFIG = {
    "task": {"kind": "digits", "train_size": 300},
    # without BatchNorm: θ_0's logged test loss is then the seeded model's alone (the step-0
    # training forward would move BatchNorm's running statistics before the log)
    "model": {"kind": "resnet", "depth": 8, "width": 0.25, "norm": "none"},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "batch_size": 64,
    "steps": 20,
    "log_every": 10,
    "amp": "bf16",
    "probes": {"hessian": {"every": 10, "k": 1, "batch_size": 64, "smallest": False}},
}


def test_a_worker_trains_a_zoo_model(service: Service) -> None:
    cost = httpx.post(f"{service.url}/api/runs/validate", json=CONFIG, timeout=30).json()
    run = service.completed(service.submit(CONFIG), timeout=240)
    assert run["config"]["model"]["depth"] == 8
    metrics = httpx.get(
        f"{service.url}/api/runs/{run['id']}/metrics",
        params={"names": "test.loss,hessian.lambda_max", "max_points": 0},
        timeout=30,
    ).json()
    series = {s["name"]: s for s in metrics["series"]}
    assert series["test.loss"]["steps"] == [0, 10, 20]
    assert all(math.isfinite(v) for v in series["hessian.lambda_max"]["values"])

    config = RunConfig.model_validate(run["config"])
    task = build_task(config.task, config.seed, config.model)
    assert sum(p.numel() for p in task.model.parameters()) == cost["parameters"]
    loss, _ = evaluate(task.model, task.test_x, task.test_y)  # evaluation is float32
    assert series["test.loss"]["values"][0] == pytest.approx(loss, rel=1e-4)
