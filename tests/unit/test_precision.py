"""Mixed precision and torch.compile in the training step (``worker.training.precision``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from server.schemas import RunConfig
from tests.recording import Recorder
from worker.training.loop import train
from worker.training.precision import Precision

CPU = torch.device("cpu")


def config(**overrides: object) -> RunConfig:
    base = {
        "task": {"kind": "gaussian_mixture", "n_train": 128, "n_test": 64, "hidden": 16},
        "steps": 30,
        "log_every": 10,
        "optimizer": {"name": "adam", "lr": 0.01},
    }
    return RunConfig.model_validate(base | overrides)


def test_bf16_autocasts_the_forward_and_keeps_float32_weights() -> None:
    model = nn.Linear(4, 3)
    precision = Precision("bf16", False, model, CPU)
    with precision.autocast():
        out = precision.forward(torch.randn(5, 4))
    assert out.dtype == torch.bfloat16
    assert model.weight.dtype == torch.float32


def test_a_bf16_run_trains_on_the_cpu() -> None:
    recorder = Recorder()
    assert train(config(amp="bf16", device="cpu"), recorder).status == "completed"
    losses = [recorder.points[s]["train.loss"] for s in (0, 30)]
    assert all(map(math.isfinite, losses)) and losses[1] < losses[0]


def test_fp16_and_compile_on_a_cpu_worker_are_dropped_with_an_event() -> None:
    """``device: auto`` landing on a CPU: the same run as without them, and a ``run.precision``
    event that says what was dropped."""
    plain, dropped = Recorder(), Recorder()
    train(config(), plain)
    train(config(amp="fp16", compile=True), dropped)
    assert dropped.points == plain.points
    payload = dropped.events["run.precision", 0]
    assert payload["ignored"] == ["amp fp16", "compile"]


def test_the_fp16_scaler_unscales_gradients_and_skips_an_overflowing_step() -> None:
    """The scaler mechanics on whatever device autocasts float16 (the CPU here): gradients come
    out unscaled; a step whose scaled gradients overflow is skipped and the scale halves."""
    model = nn.Linear(3, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = Precision("fp16", False, model, CPU)
    scale = precision.scaler.get_scale()
    for x, skipped in ((torch.tensor([[1.0, 2.0, 3.0]]), False), (torch.full((1, 3), 1e35), True)):
        before = model.weight.detach().clone()
        optimizer.zero_grad()
        precision.backward(model(x).sum(), optimizer)  # d(w·x)/dw = x, times the scale
        if not skipped:
            torch.testing.assert_close(model.weight.grad, x)
        precision.step(optimizer)
        assert torch.equal(model.weight, before) == skipped
    assert precision.scaler.get_scale() == pytest.approx(scale / 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 autocast and compile need CUDA")
@pytest.mark.parametrize("model", [None, {"kind": "resnet", "depth": 8, "width": 0.25}])
def test_fp16_and_compile_train_on_cuda(model: dict | None) -> None:
    task = {"kind": "digits"}
    recorder = Recorder()
    run = config(task=task, model=model, amp="fp16", compile=True, device="cuda")
    assert train(run, recorder).status == "completed"
    losses = [recorder.points[s]["train.loss"] for s in (0, 30)]
    assert all(map(math.isfinite, losses)) and losses[1] < losses[0]
    assert not recorder.events
