"""The SDK drives the worker's own probe hooks: the same model, data and seed give the same
results as a service run, value for value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import observatory as obs
from server.schemas import RunConfig
from tests.recording import Recorder
from tests.sdk_records import SpoolContents, only_file
from worker.probe_hooks import build_hooks, grokking, hessian, landscape
from worker.probe_hooks.common import chunks, fixed_subset
from worker.probes.per_example import MonitorSet
from worker.training.loop import make_optimizer, train
from worker.training.tasks import build_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = {
    "task": {"kind": "digits", "hidden": 16, "train_size": 300},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "steps": 20,
    "log_every": 10,
    "seed": 3,
    "device": "cpu",
    "probes": {
        "hessian": {"every": 5, "k": 2, "batch_size": 64, "trace": True, "trace_probes": 6},
        "landscape": {"every": 10, "resolution": 5, "eval_size": 64},
        "collapse": {"every": 10, "max_examples": 200},
        "opposing": {"every": 5, "monitor_size": 64, "k": 8},
        "grokking": {"every": 5, "eval_examples": 100, "ntk_examples": 16},
    },
}


def sdk_run(config: RunConfig, spool_dir: Path) -> SpoolContents:
    """The service run's training, written as a user would, with ``run.probes`` (offline)."""
    task = build_task(config.task, config.seed)
    model, x, y = task.model, task.train_x, task.train_y
    cpu, seed, p = torch.device("cpu"), config.seed, config.probes
    optimizer = make_optimizer(config.optimizer, model)
    monitor = torch.as_tensor(MonitorSet.choose(len(y), p.opposing.monitor_size, seed).indices)
    n, n_test = p.grokking.eval_examples, min(p.grokking.eval_examples, config.eval_max_examples)
    ntk = grokking.balanced_subset(x, y, 16, p.grokking.ntk_per_class, seed + grokking.SEED_OFFSET)
    landscape_data = fixed_subset(x, y, 64, seed + landscape.SEED_OFFSET, cpu)
    run = obs.init(name="same", mode="offline", spool_dir=spool_dir)
    probes = run.probes(
        model,
        task.loss_fn,
        [fixed_subset(x, y, 64, seed + hessian.SEED_OFFSET, cpu)],
        hessian=p.hessian.model_dump(),
        landscape={**p.landscape.model_dump(), "data": chunks(*landscape_data, 1024)},
        collapse={**p.collapse.model_dump(), "data": [(x[:200], y[:200])], "n_classes": 10},
        opposing={
            **p.opposing.model_dump(),
            "monitor": (x[monitor], y[monitor]),
            "indices": monitor.numpy(),
            "n_train": len(y),
            "image_shape": task.image_shape,
        },
        grokking={
            **p.grokking.model_dump(),
            "train": (x[:n], y[:n]),
            "test": (task.test_x[:n_test], task.test_y[:n_test]),
            "ntk_data": ntk,
        },
        example_loss_fn=task.example_loss_fn,
        seed=seed,
    )
    last_loss = None
    for step in range(config.steps + 1):
        probes.step(step, optimizer, loss=last_loss, last=step == config.steps)
        loss = task.loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        last_loss = loss.detach()
        if step == config.steps:
            break
        optimizer.step()
    run.finish()
    return SpoolContents(only_file(spool_dir))


def without_cost(meta: dict) -> dict:
    """Metadata minus the probes' timings (seconds differ between any two runs)."""
    text = json.dumps(meta, sort_keys=True, default=str)
    out = json.loads(text)
    out.pop("cost", None)
    return out


def test_worker_loop_and_sdk_give_identical_probe_outputs(tmp_path: Path) -> None:
    config = RunConfig.model_validate(CONFIG)
    service = Recorder()
    train(config, service, hooks=build_hooks(config))
    sdk = sdk_run(config, tmp_path)

    loop_metrics = {"train.loss", "train.acc", "test.loss", "test.acc", "lr"}
    loop_metrics |= {"grad_norm", "weight_norm"}
    for step, values in service.points.items():
        probe_values = {k: v for k, v in values.items() if k not in loop_metrics}
        if probe_values:
            got = {k: sdk.points.get(step, {}).get(k) for k in probe_values}
            nan = {k for k, v in probe_values.items() if v != v}  # NaN travels as NaN too
            assert {k for k, v in got.items() if v != v} == nan, step
            assert {k: v for k, v in got.items() if k not in nan} == {
                k: v for k, v in probe_values.items() if k not in nan
            }, step
    sdk_steps = {s for s, v in sdk.points.items() if v}
    assert sdk_steps == {s for s, v in service.points.items() if set(v) - loop_metrics}
    assert sdk.events == service.events
    assert sdk.results.keys() == service.results.keys()
    assert {"hessian", "landscape", "collapse", "opposing", "opposing.monitor"} <= {
        probe for probe, _ in sdk.results
    }
    for key, (arrays, meta) in service.results.items():
        got_arrays, got_meta = sdk.results[key]
        assert got_arrays.keys() == arrays.keys(), key
        for name, value in arrays.items():
            np.testing.assert_array_equal(got_arrays[name], np.asarray(value), err_msg=str(key))
        want = without_cost(meta)
        want.pop("eval_seed", None)  # how the service chose its subset; the user chose theirs
        assert without_cost(got_meta) == want, key
