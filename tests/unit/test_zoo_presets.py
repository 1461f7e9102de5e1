"""The zoo's image presets (``server.zoo_presets``) through the worker's loop at reduced size: the
same model kind, optimizer and probes, a narrower and shallower network for a few steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from server.presets import PRESETS
from server.schemas import RunConfig
from server.zoo_presets import ZOO_PRESETS
from tests.recording import Recorder
from worker.probe_hooks.service import build_hooks
from worker.training.loop import train

REDUCED = {"steps": 6, "log_every": 3, "device": "cpu"}


def reduced(config: dict) -> RunConfig:
    """``config`` with a ResNet-8 of a quarter width on 200 of the demo images, its probes every
    3 steps."""
    probes = {name: entry | {"every": 3} for name, entry in config["probes"].items()}
    return RunConfig.model_validate(
        config
        | REDUCED
        | {
            "task": config["task"] | {"subset": 200},
            "model": config["model"] | {"depth": 8, "width": 0.25},
            "probes": probes,
        }
    )


def test_the_presets_are_offered() -> None:
    offered = {p["name"]: p["config"] for p in PRESETS}
    for name, _, config in ZOO_PRESETS:
        assert offered[name]["model"] == RunConfig.model_validate(config).model.model_dump()


@pytest.mark.parametrize(("name", "config"), [(n, c) for n, _, c in ZOO_PRESETS])
def test_each_preset_runs_its_probes_at_reduced_size(
    name: str, config: dict, demo_dir: Path
) -> None:
    run = reduced(config)
    recorder = Recorder()
    assert train(run, recorder, hooks=build_hooks(run)).status == "completed"
    last = recorder.points[6]
    if run.probes.hessian is not None:
        assert last["hessian.threshold"] == pytest.approx(2 / run.optimizer.lr)
        names = ["hessian.lambda_max"]
    else:
        layers = run.probes.collapse.layers
        names = ["nc.nc1", *(f"nc.{layer}.nc1" for layer in layers)]
    for metric in ["train.loss", *names]:
        assert math.isfinite(last[metric]), metric
