"""Every probe on every zoo model that takes images, through the worker's loop: a few steps on
digits with all probes due, BatchNorm models included (the probes evaluate them in eval mode on
the running statistics; docs/models.md)."""

from __future__ import annotations

import math

import pytest

from server.schemas import RunConfig
from tests.recording import Recorder
from worker.probe_hooks.service import build_hooks
from worker.training.loop import train

MODELS = [  # and a module whose input gets a per-layer NC1
    ({"kind": "mlp", "widths": [16, 16], "norm": "batchnorm"}, "4"),
    ({"kind": "cnn", "channels": [4, 8], "convs": 1}, "features.1"),
    ({"kind": "resnet", "depth": 8, "width": 0.25}, "features.stages.2"),
    ({"kind": "vit", "patch_size": 4, "depth": 1, "width": 8, "heads": 2}, "norm"),
]
PROBES = {
    "hessian": {"every": 2, "k": 2, "batch_size": 64, "smallest": False},
    "landscape": {"every": 4, "kind": "hessian", "dims": 1, "resolution": 3, "eval_size": 32},
    "collapse": {"every": 2, "max_examples": 200},
    "grokking": {"every": 2, "eval_examples": 200, "ntk_examples": 20, "ntk_per_class": 2},
    "opposing": {"every": 2, "monitor_size": 64, "k": 4, "min_size": 2},
}


@pytest.mark.parametrize(("model", "layer"), MODELS, ids=[m["kind"] for m, _ in MODELS])
def test_every_probe_runs_on_each_image_model(model: dict, layer: str) -> None:
    probes = PROBES | {"collapse": PROBES["collapse"] | {"layers": [layer]}}
    config = RunConfig.model_validate(
        {
            "task": {"kind": "digits", "train_size": 200},
            "model": model,
            "optimizer": {"name": "sgd", "lr": 0.05},
            "batch_size": 64,
            "steps": 4,
            "log_every": 2,
            "device": "cpu",
            "probes": probes,
        }
    )
    recorder = Recorder()
    outcome = train(config, recorder, hooks=build_hooks(config))
    assert outcome.status == "completed"
    last = recorder.points[4]
    for name in (
        "train.loss",
        "hessian.lambda_max",
        "nc.nc1",
        f"nc.{layer}.nc1",
        "grok.ntk_alignment",
    ):
        assert name in last and math.isfinite(last[name]), name
    assert {probe for probe, _ in recorder.results} >= {"hessian", "landscape", "collapse"}
