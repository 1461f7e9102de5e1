"""The example task plugin (examples/observatory-plugin-example) trained by a real worker:
``observatory up`` finds it through its entry point, the worker imports its builder, and the
stored test loss at step 0 is that of the model the plugin builds for the run's seed."""

from __future__ import annotations

import math

import httpx
import pytest

from server.schemas import RunConfig
from tests.conftest import Service
from worker.training.loop import evaluate
from worker.training.tasks import build_task

pytestmark = pytest.mark.integration

PARITY = {
    "name": "sparse-parity",
    "task": {"kind": "sparse_parity", "n_bits": 12, "k": 3, "n_train": 256, "n_test": 128,
             "hidden": 32},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "batch_size": 32,
    "steps": 40,
    "log_every": 10,
    "seed": 3,
    "device": "cpu",
}  # fmt: skip


def test_a_worker_trains_the_example_plugin_task(service: Service, one_torch_thread: None) -> None:
    run = service.completed(service.submit(PARITY), timeout=120)
    assert run["config"]["task"]["kind"] == "sparse_parity" and run["step"] == 40
    url = f"{service.url}/api/runs/{run['id']}/metrics"
    body = httpx.get(url, params={"names": "train.loss,test.loss"}, timeout=30).json()
    series = {s["name"]: dict(zip(s["steps"], s["values"], strict=True)) for s in body["series"]}
    assert sorted(series["train.loss"]) == [0, 10, 20, 30, 40]
    assert all(math.isfinite(v) for s in series.values() for v in s.values())
    config = RunConfig.model_validate(PARITY)
    task = build_task(config.task, config.seed)
    loss, _ = evaluate(task.model, task.test_x, task.test_y)
    assert series["test.loss"][0] == pytest.approx(loss, rel=1e-5)
