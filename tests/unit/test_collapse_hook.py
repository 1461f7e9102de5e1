"""The neural-collapse hook through the training loop, against the library called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from server.schemas import DigitsTask, RunConfig
from tests.recording import Recorder, Snapshot
from worker.probe_hooks import build_hooks
from worker.probe_hooks.collapse import PROBE
from worker.probes.collapse import collect, terminal_phase_drop
from worker.training.loop import train
from worker.training.tasks import build_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(probe: dict, steps: int = 20) -> RunConfig:
    return RunConfig.model_validate(
        {
            "task": {"kind": "gaussian_mixture", "n_train": 300, "hidden": 12, "dim": 6},
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
            "batch_size": 64,
            "steps": steps,
            "log_every": 10,
            "seed": 3,
            "device": "cpu",
            "probes": {"collapse": probe},
        }
    )


def test_hook_stores_what_the_library_computes() -> None:
    cfg = config({"every": 10, "max_examples": 200, "layers": ["1", "3"], "points_per_class": 7})
    reporter, snapshot, grads_before = Recorder(), Snapshot(10), Snapshot(10)
    train(cfg, reporter, hooks=[grads_before, *build_hooks(cfg), snapshot])
    assert sorted(step for probe, step in reporter.results if probe == PROBE) == [0, 10, 20]
    for step, (model, training, grads, ctx) in snapshot.taken.items():
        assert training  # the probe restored train mode before the next hook ran
        x, y = ctx.task.train_x[:200], ctx.task.train_y[:200]
        want = collect(model, [(x, y)], layers=["4", "1", "3"], max_points_per_class=7)
        main = want["4"]
        got = reporter.points[step]
        assert got["nc.nc1"] == pytest.approx(main.nc1, rel=1e-9)
        assert got["nc.equinorm"] == pytest.approx(main.equinorm, rel=1e-9)
        assert got["nc.equiangular"] == pytest.approx(main.equiangular, rel=1e-9)
        assert got["nc.nc3"] == pytest.approx(main.nc3, rel=1e-9)
        assert got["nc.nc4"] == pytest.approx(main.nc4, abs=1e-12)
        assert got["nc.1.nc1"] == pytest.approx(want["1"].nc1, rel=1e-9)
        assert got["nc.3.nc1"] == pytest.approx(want["3"].nc1, rel=1e-9)
        assert "nc.4.nc1" not in got
        arrays, meta = reporter.results[PROBE, step]
        np.testing.assert_allclose(arrays["cosines"], main.cosines, atol=1e-6)
        np.testing.assert_allclose(arrays["points"], main.projection.points, atol=1e-5)
        np.testing.assert_array_equal(arrays["labels"], main.projection.labels)
        np.testing.assert_allclose(arrays["means"], main.projection.means, atol=1e-5)
        np.testing.assert_array_equal(arrays["counts"], main.counts)
        assert np.bincount(arrays["labels"]).max() <= 7
        assert meta["layer"] == "4" and meta["examples"] == 200
        assert meta["etf"] == pytest.approx(-1 / (len(main.classes) - 1))
        assert meta["cost"]["forward_passes"] == 2
        for before, after in zip(grads_before.taken[step][2], grads, strict=True):
            assert (before is None and after is None) or torch.equal(before, after)
        assert step == 0 or grads[0] is not None  # there was a .grad to leave untouched


def test_probe_leaves_training_unchanged() -> None:
    """The same run with and without the probe reaches identical weights."""
    with_probe, without = config({"every": 5, "max_examples": 100}), config({"every": 5})
    without = without.model_copy(update={"probes": type(without.probes)()})
    finals = []
    for cfg in (with_probe, without):
        keep = Snapshot(20)
        train(cfg, Recorder(), hooks=[*build_hooks(cfg), keep])
        finals.append(keep.taken[20][0].state_dict())
    for name, value in finals[0].items():
        assert torch.equal(value, finals[1][name]), name


@pytest.mark.parametrize(
    "probe, field",
    [
        ({"max_examples": 10**6}, "max_examples"),
        ({"max_examples": 1}, "max_examples"),
        ({"layers": [str(i) for i in range(9)]}, "layers"),
        ({"layers": [""]}, "layers"),
        ({"every": 0}, "every"),
        ({"points_per_class": 10**4}, "points_per_class"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_limits(probe: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        config(probe)


def test_terminal_phase_drop_starts_at_the_first_fitted_probe_step() -> None:
    acc = {0: 0.1, 10: 1.0, 20: 0.99, 30: 1.0, 40: 1.0, 50: 1.0}
    nc1 = {0: 1.0, 10: 0.5, 20: 0.6, 30: 0.2, 50: 0.05}
    assert terminal_phase_drop(acc, nc1) == (10, 50, pytest.approx(10.0))
    # NC1 missing at the first fitted step (sparser probe): the next fitted probe step.
    assert terminal_phase_drop(acc, {s: v for s, v in nc1.items() if s != 10})[:2] == (30, 50)
    with pytest.raises(ValueError, match="100 %"):
        terminal_phase_drop({0: 0.5, 10: 0.999}, {0: 1.0, 10: 0.5})


def test_digits_mlp_batch_norm_only_inserts_normalisation() -> None:
    """``batch_norm`` puts a BatchNorm1d before each ReLU and changes no initial weight."""
    plain = build_task(DigitsTask(hidden=16, depth=3), 5).model
    normed = build_task(DigitsTask(hidden=16, depth=3, batch_norm=True), 5).model
    kinds = [type(m).__name__ for m in normed]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 3 + ["Linear"]
    linears = [m for m in normed if isinstance(m, nn.Linear)]
    for a, b in zip([m for m in plain if isinstance(m, nn.Linear)], linears, strict=True):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    # In train mode each ReLU's input is standardised over the batch, unit by unit.
    x = build_task(DigitsTask(), 5).train_x[:256]
    inputs = []
    for relu in (m for m in normed if isinstance(m, nn.ReLU)):
        relu.register_forward_hook(lambda _m, args, _out: inputs.append(args[0]))
    normed.train()(x)
    assert len(inputs) == 3
    for h in inputs:
        torch.testing.assert_close(h.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
        torch.testing.assert_close(h.var(0, correction=0), torch.ones(16), atol=2e-3, rtol=0)


def test_diverged_run_reports_nan_instead_of_failing() -> None:
    cfg = config({"every": 5}, steps=10)
    optimizer = cfg.optimizer.model_copy(update={"lr": 1e4})
    cfg = cfg.model_copy(update={"optimizer": optimizer, "on_divergence": "continue"})
    reporter = Recorder()
    train(cfg, reporter, hooks=build_hooks(cfg))
    assert any(np.isnan(v.get("nc.nc1", 0.0)) for v in reporter.points.values())
