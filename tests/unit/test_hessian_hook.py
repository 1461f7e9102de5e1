"""The Hessian probe hook through the training loop, against the library called directly."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from server.schemas import RunConfig
from worker.probe_hooks import build_hooks
from worker.probe_hooks.common import fixed_subset
from worker.probe_hooks.hessian import SEED_OFFSET
from worker.probes.batch_sharpness import batch_sharpness
from worker.probes.hessian import (
    density,
    layer_spectra,
    preconditioned_sharpness,
    top_eigenvalues,
    trace,
)
from worker.probes.stability import edge_of_stability_threshold
from worker.training.checkpoint import CheckpointStore
from worker.training.loop import StepContext, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder:
    """In-memory reporter that accepts probe output (metrics of a step may come in parts)."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.points: dict[int, dict[str, float]] = {}
        self.events: list[tuple[int, str, dict]] = []
        self.arrays_at: dict[int, tuple[dict, dict]] = {}
        self.stop_at = stop_at

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.points.setdefault(step, {}).update(values)

    def event(self, step: int, kind: str, payload: dict) -> None:
        self.events.append((step, kind, payload))

    def arrays(self, probe: str, step: int, arrays: dict, meta: dict) -> None:
        assert probe == "hessian" and step not in self.arrays_at
        self.arrays_at[step] = (arrays, meta)

    def flush(self) -> None:
        pass

    def stop_reason(self, step: int) -> str | None:
        return "interrupted" if self.stop_at is not None and step >= self.stop_at else None


class Snapshot:
    """A hook after the probe: copies of θ_s and the optimizer at the probe's steps."""

    name = "snapshot"

    def __init__(self, every: int) -> None:
        self.every, self.taken = every, {}

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step % self.every == 0:
            model, optimizer = copy.deepcopy((ctx.model, ctx.optimizer))  # shared parameters
            self.taken[ctx.step] = (model, optimizer, ctx)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def series(reporter: Recorder, name: str) -> list[tuple[int, float]]:
    return [(s, v[name]) for s, v in sorted(reporter.points.items()) if name in v]


def test_hook_stores_what_the_library_computes() -> None:
    probe = {"every": 10, "k": 3, "batch_size": 100, "tol": 1e-4, "trace": True}
    probe |= {
        "warm_start": False,
        "trace_probes": 12,
        "density": True,
        "density_steps": 12,
        "per_layer": True,
    }
    config = RunConfig.model_validate(
        {
            "task": {"kind": "gaussian_mixture", "n_train": 256, "hidden": 8, "dim": 6},
            "optimizer": {"name": "adam", "lr": 0.01},
            "steps": 20,
            "log_every": 10,
            "seed": 5,
            "device": "cpu",
            "probes": {"hessian": probe},
        }
    )
    reporter, snapshot = Recorder(), Snapshot(10)
    train(config, reporter, hooks=[*build_hooks(config), snapshot])
    assert sorted(reporter.arrays_at) == [0, 10, 20]
    for step, (model, optimizer, ctx) in snapshot.taken.items():
        data = [
            fixed_subset(
                ctx.task.train_x,
                ctx.task.train_y,
                100,
                config.seed + SEED_OFFSET,
                torch.device("cpu"),
            )
        ]
        assert len(data[0][1]) == 100
        loss, seed = ctx.task.loss_fn, config.seed
        want = top_eigenvalues(model, loss, data, k=3, tol=1e-4, which="both", seed=seed)
        got, arrays_meta = reporter.points[step], reporter.arrays_at[step]
        arrays, meta = arrays_meta
        np.testing.assert_allclose(arrays["eigenvalues"], want.eigenvalues.numpy(), rtol=1e-6)
        assert got["hessian.lambda_max"] == pytest.approx(float(want.eigenvalues[0]), rel=1e-6)
        assert got["hessian.lambda_min"] == pytest.approx(float(want.eigenvalues[-1]), rel=1e-6)
        assert [got[f"hessian.eig.{i}"] for i in range(3)] == pytest.approx(
            want.eigenvalues[:3].tolist(), rel=1e-6
        )
        assert "hessian.eig.3" not in got
        threshold = edge_of_stability_threshold(0.01, adam_beta1=0.9)
        assert got["hessian.threshold"] == pytest.approx(threshold) == meta["threshold"]
        tr = trace(model, loss, data, n_probes=12, seed=seed)
        assert got["hessian.trace"] == pytest.approx(tr.estimate, rel=1e-6)
        assert got["hessian.trace_se"] == pytest.approx(tr.standard_error, rel=1e-6)
        dens = density(model, loss, data, n_starts=2, steps=12, seed=seed)
        np.testing.assert_allclose(arrays["density"], dens.density.numpy(), rtol=1e-6)
        np.testing.assert_allclose(arrays["density_grid"], dens.grid.numpy(), rtol=1e-6)
        layers = layer_spectra(model, loss, data, k=1, tol=1e-4, seed=seed)
        assert meta["layers"] == list(layers) == ["0", "2", "4"]
        for block, res in layers.items():
            assert got[f"hessian.layer.{block}"] == pytest.approx(float(res.eigenvalues[0]))
        assert meta["cost"]["n_hvp"] >= want.n_hvp + tr.n_hvp + dens.n_hvp
        if step == 0:  # no Adam state yet: no preconditioned sharpness
            assert "hessian.precond_lambda_max" not in got
        else:
            pre = preconditioned_sharpness(model, loss, data, optimizer, tol=1e-4, seed=seed)
            assert got["hessian.precond_lambda_max"] == pytest.approx(
                float(pre.eigenvalues[0]), rel=1e-6
            )
    assert reporter.events == []  # Adam at lr 0.01 is far from 38/lr


EOS = {
    "task": {"kind": "digits", "hidden": 32, "train_size": 500},
    "optimizer": {"name": "sgd", "lr": 0.2},
    "steps": 300,
    "log_every": 10,
    "checkpoint_every": 50,
    "device": "cpu",
    "probes": {"hessian": {"every": 10, "k": 2, "batch_size": 500}},
}


def test_eos_event_once_per_run_across_a_resume(tmp_path: Path) -> None:
    """Interrupted just after the crossing (wherever this CPU's trajectory crosses) and resumed;
    the warm-start trackers' vectors come back from the checkpoint."""
    hessian = EOS["probes"]["hessian"] | {"warm_start": True}
    config = RunConfig.model_validate(EOS | {"probes": {"hessian": hessian}})
    straight = Recorder()
    train(config, straight, hooks=build_hooks(config))
    [(crossed, kind, payload)] = straight.events
    assert kind == "eos.crossed" and payload["step"] == crossed < config.steps
    assert payload["threshold"] == pytest.approx(10.0) and not payload["preconditioned"]
    assert (
        payload["lambda_max"] >= 10.0 > dict(series(straight, "hessian.lambda_max"))[crossed - 10]
    )

    store = CheckpointStore(tmp_path, run_id=1)
    first = Recorder(stop_at=crossed + 10)
    assert train(config, first, checkpoints=store, hooks=build_hooks(config)).status == (
        "interrupted"
    )
    state = store.load()["hooks"]["hessian"]
    assert state["crossed_at"] == crossed and state["trackers"]["largest"]["vectors"].shape[0] == 3
    resumed = Recorder()
    train(config, resumed, checkpoints=store, hooks=build_hooks(config))
    assert first.events == straight.events and resumed.events == []  # not re-emitted
    last = config.steps
    assert resumed.points[last] == pytest.approx(straight.points[last], rel=1e-5)


@pytest.mark.parametrize(
    ("probe", "field"),
    [
        ({"k": 21}, "k"),
        ({"batch_size": 100_000}, "batch_size"),
        ({"tol": 0}, "tol"),
        (
            {
                "trace": True,
                "trace_probes": 1000,
                "density": True,
                "density_starts": 16,
                "density_steps": 200,
            },
            "Hessian-vector products",
        ),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_absurd_hessian_configs_are_rejected(probe: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RunConfig.model_validate({"probes": {"hessian": probe}})


def test_warm_hook_is_within_the_bound_of_cold_lanczos_and_logs_batch_sharpness() -> None:
    """Warm-started trackers give the cold eigenvalues within the certified residual bound at
    every probe step (both ends), and batch sharpness is the library's value on the hook's
    step-seeded minibatches; for the top eigenvalue alone later probes cost fewer HVPs."""
    probe = {"every": 10, "k": 2, "batch_size": 200, "tol": 1e-6, "batch_sharpness": 3}
    probe |= {"warm_start": True}
    config = RunConfig.model_validate(
        EOS | {"steps": 60, "batch_size": 50, "probes": {"hessian": probe}}
    )
    [hook] = build_hooks(config)
    reporter, snapshot = Recorder(), Snapshot(10)
    train(config, reporter, hooks=[hook, snapshot])
    for step, (model, _, ctx) in sorted(snapshot.taken.items()):
        data = hook.hook.data
        cold = top_eigenvalues(model, ctx.task.loss_fn, data, k=2, tol=1e-8, which="both")
        arrays, _ = reporter.arrays_at[step]
        bound = 1e-6 * abs(float(cold.eigenvalues[0])) + arrays["residuals"]
        assert np.all(np.abs(arrays["eigenvalues"] - cold.eigenvalues.numpy()) <= 2 * bound)
        want = batch_sharpness(model, ctx.task.loss_fn, hook.hook.minibatches(step)).value
        assert reporter.points[step]["hessian.batch_sharpness"] == pytest.approx(want, rel=1e-9)

    top = {"every": 10, "k": 1, "batch_size": 500, "tol": 1e-3, "smallest": False}
    config = RunConfig.model_validate(
        EOS | {"steps": 100, "probes": {"hessian": top | {"warm_start": True}}}
    )
    reporter = Recorder()
    train(config, reporter, hooks=build_hooks(config))
    costs = [reporter.arrays_at[s][1]["cost"]["n_hvp"] for s in sorted(reporter.arrays_at)]
    assert "hessian.lambda_min" not in reporter.points[0]
    assert sorted(costs[1:])[len(costs) // 2] < costs[0]
