"""The data-set presets (``server.dataset_presets``) through the worker's loop at reduced size on
make-demo's data: the same task, optimizer and probes with a smaller model for a few steps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from server.dataset_presets import DATASET_PRESETS, SPIKE_GPT
from server.presets import PRESETS
from server.schemas import RunConfig
from tests.recording import Recorder
from worker.probe_hooks.service import build_hooks
from worker.training.loop import train
from worker.training.tasks import build_task


def test_the_presets_are_offered() -> None:
    offered = {p["name"]: p["config"] for p in PRESETS}
    for name, _, config in DATASET_PRESETS:
        assert offered[name]["task"] == RunConfig.model_validate(config).task.model_dump()


def test_the_gpt_preset_probes_per_sequence_losses(demo_dir: Path) -> None:
    model = SPIKE_GPT["model"] | {"layers": 1, "width": 16}
    probes = {"opposing": SPIKE_GPT["probes"]["opposing"] | {"monitor_size": 32, "k": 4}}
    reduced = {"model": model, "probes": probes, "steps": 10}
    run = RunConfig.model_validate(SPIKE_GPT | reduced | {"device": "cpu"})
    recorder = Recorder()
    outcome = train(run, recorder, hooks=build_hooks(run))
    assert outcome.status == "completed"
    assert all(math.isfinite(recorder.points[s]["train.loss"]) for s in range(11))
    monitor, _ = recorder.results["opposing.monitor", 0]
    arrays, meta = recorder.results["opposing", 10]
    assert arrays["losses"].shape == (32,)  # one loss per monitored sequence
    # θ_10 rebuilt from the seed is not at hand; the step-0 losses are those of the seeded model
    task = build_task(run.task, run.seed, run.model)
    x, y = task.train_x[monitor["indices"]], task.train_y[monitor["indices"]]
    with torch.no_grad():
        expected = task.example_loss_fn(task.model.eval()(x), y).numpy()
    step0, _ = recorder.results["opposing", 0]
    np.testing.assert_allclose(step0["losses"], expected, rtol=1e-5, atol=1e-6)
    assert meta["mean_loss"] == pytest.approx(float(arrays["losses"].mean()), rel=1e-6)
