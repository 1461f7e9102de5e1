"""The loss-landscape hook through the training loop, against the library called directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from server.presets import PRESETS
from server.schemas import RunConfig
from tests.recording import Recorder, Snapshot
from worker.probe_hooks import build_hooks
from worker.probe_hooks.common import fixed_subset
from worker.probe_hooks.landscape import DIRECTIONS, PROBE, SEED_OFFSET
from worker.probe_hooks.service import ServiceHook
from worker.probes.directions import trajectory_pca
from worker.probes.hessian import top_eigenvalues
from worker.probes.landscape import surface
from worker.training.checkpoint import ReportedCheckpoints
from worker.training.loop import StepContext, train
from worker.training.tasks import Task, build_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EVAL = 96


class Interrupt(Recorder):
    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at = stop_at

    def stop_reason(self, step: int) -> str | None:
        return "interrupted" if step >= self.stop_at else None


def config(probe: dict, steps: int = 20, **extra: object) -> RunConfig:
    return RunConfig.model_validate(
        {
            "task": {"kind": "digits", "model": "cnn", "hidden": 4},
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
            "batch_size": 64,
            "steps": steps,
            "log_every": 10,
            "seed": 2,
            "device": "cpu",
            "probes": {"landscape": {"eval_size": EVAL, "resolution": 7} | probe},
        }
        | extra
    )


def eval_data(ctx: StepContext) -> list:
    return [
        fixed_subset(
            ctx.task.train_x,
            ctx.task.train_y,
            EVAL,
            ctx.config.seed + SEED_OFFSET,
            torch.device("cpu"),
        )
    ]


def stored_directions(reporter: Recorder, step: int, model: torch.nn.Module) -> tuple:
    """θ_s and the direction dicts of the ``landscape.directions`` record at ``step``."""
    arrays, meta = reporter.results[DIRECTIONS, step]

    def unflatten(flat: np.ndarray) -> dict[str, torch.Tensor]:
        out, start = {}, 0
        for name, shape in meta["shapes"].items():
            size = int(np.prod(shape))
            out[name] = torch.from_numpy(flat[start : start + size].copy()).view(shape)
            start += size
        assert start == sum(p.numel() for p in model.parameters())
        return out

    directions = [unflatten(arrays[k]) for k in sorted(arrays) if k.startswith("direction_")]
    return unflatten(arrays["center"]), directions


def test_random_surface_matches_the_library_and_leaves_the_model_alone() -> None:
    cfg = config({"every": 10, "kind": "random", "range": 0.5})
    before, after, reporter = Snapshot(), Snapshot(), Recorder()
    train(cfg, reporter, hooks=[before, *build_hooks(cfg), after])
    assert sorted(s for p, s in reporter.results if p == PROBE) == [0, 10, 20]
    coords = np.linspace(-0.5, 0.5, 7)
    for step in (0, 10, 20):
        model, training, grads, ctx = after.taken[step]
        old_model, _, old_grads, _ = before.taken[step]
        assert training  # train mode restored for the rest of the step
        for (name, p), q in zip(
            model.state_dict().items(), old_model.state_dict().values(), strict=True
        ):
            assert torch.equal(p, q), name  # weights and buffers bit for bit
        for g, h in zip(grads, old_grads, strict=True):
            assert (g is None and h is None) or torch.equal(g, h)
        data = eval_data(ctx)
        want = surface(model, ctx.task.loss_fn, data, ("random", "random"), coords, seed=2)
        arrays, meta = reporter.results[PROBE, step]
        np.testing.assert_array_equal(arrays["coords"], coords)
        assert arrays["loss"].shape == arrays["accuracy"].shape == (7, 7)
        np.testing.assert_allclose(arrays["loss"], want.loss, rtol=1e-6)
        np.testing.assert_allclose(arrays["accuracy"], want.accuracy, atol=1e-6)
        model.eval()
        with torch.no_grad():
            x, y = data[0]
            current = float(ctx.task.loss_fn(model(x), y))
        points = reporter.points[step]
        assert points["landscape.center_loss"] == pytest.approx(current, rel=1e-6)
        assert arrays["loss"][3, 3] == pytest.approx(current, rel=1e-6)
        h = coords[1] - coords[0]
        second = [
            (want.loss[4, 3] - 2 * want.loss[3, 3] + want.loss[2, 3]) / h**2,
            (want.loss[3, 4] - 2 * want.loss[3, 3] + want.loss[3, 2]) / h**2,
        ]
        assert points["landscape.curvature"] == pytest.approx(max(second), rel=1e-5)
        assert meta["kinds"] == ["random", "random"] and meta["seed"] == 2
        assert meta["bn_stats"] == "running" and meta["normalization"] == "filter"
        assert meta["eval_size"] == EVAL and meta["eval_seed"] == 2 + SEED_OFFSET
        assert meta["cost"]["n_points"] == 49 and meta["cost"]["n_point_forwards"] == 50
        assert meta["cost"]["seconds"] > 0
    assert after.taken[20][2][0] is not None  # there was a .grad to leave untouched


def test_stored_directions_recompute_the_surface() -> None:
    cfg = config({"every": 20, "kind": "random", "bias_bn": "normalize"})
    reporter, after = Recorder(), Snapshot()
    train(cfg, reporter, hooks=[*build_hooks(cfg), after])
    model, _, _, ctx = after.taken[20]
    fresh = build_task(cfg.task, cfg.seed).model  # a new model, loaded from the record alone
    center, directions = stored_directions(reporter, 20, fresh)
    fresh.load_state_dict(center)
    arrays, _ = reporter.results[PROBE, 20]
    again = surface(fresh, ctx.task.loss_fn, eval_data(ctx), directions, arrays["coords"])
    np.testing.assert_allclose(again.loss, arrays["loss"], rtol=1e-6)
    assert all(torch.equal(center[n], p) for n, p in model.named_parameters())


def test_pca_surface_draws_the_trajectory_through_the_centre() -> None:
    cfg = config({"every": 10, "kind": "pca", "snapshot_every": 2, "since": 4})
    reporter, after = Recorder(), Snapshot()
    train(cfg, reporter, hooks=[*build_hooks(cfg), after])
    assert sorted(s for p, s in reporter.results if p == PROBE) == [10, 20]  # step 0: no path
    arrays, meta = reporter.results[PROBE, 20]
    steps = list(range(4, 21, 2))
    assert arrays["trajectory_steps"].tolist() == steps
    snapshots = [after.taken[s][0] for s in steps]
    model, _, _, ctx = after.taken[20]
    want = trajectory_pca(model, [m.state_dict() for m in snapshots], k=2, steps=steps)
    np.testing.assert_allclose(arrays["explained_variance"], want.explained_variance, rtol=1e-5)
    np.testing.assert_allclose(arrays["trajectory"], want.coordinates, rtol=1e-4, atol=1e-6)
    assert meta["explained_variance"] == pytest.approx(want.explained_variance.tolist())
    assert reporter.points[20]["landscape.pca_explained"] == pytest.approx(
        want.explained_variance.sum()
    )
    # The path ends at the centre (θ_20) and starts where θ_4 projects on the stored plane.
    np.testing.assert_allclose(arrays["trajectory"][-1], [0, 0], atol=1e-6)
    center, directions = stored_directions(reporter, 20, model)
    first = snapshots[0].state_dict()
    start = [sum(float(((first[n] - center[n]) * d[n]).sum()) for n in center) for d in directions]
    extent = np.abs(want.coordinates).max()  # range 1: the grid just covers the path
    # Tolerances relative to the path's extent: a coordinate (the grid's centre) may be 0.
    np.testing.assert_allclose(arrays["trajectory"][0], start, rtol=1e-4, atol=1e-5 * extent)
    np.testing.assert_allclose(
        arrays["coords"], np.linspace(-extent, extent, 7), rtol=1e-5, atol=1e-6 * extent
    )
    again = surface(model, ctx.task.loss_fn, eval_data(ctx), directions, arrays["coords"])
    np.testing.assert_allclose(arrays["loss"], again.loss, rtol=1e-6)


def test_trajectory_memory_is_bounded_and_evenly_thinned() -> None:
    cfg = config({"every": 25, "kind": "pca", "snapshot_every": 1, "max_snapshots": 4}, steps=25)
    [hook] = build_hooks(cfg)
    reporter = Recorder()
    train(cfg, reporter, hooks=[hook])
    state = hook.state_dict()
    # 0..3 kept, then halved to every 2nd, then every 4th, then every 8th step.
    assert state["snapshot_steps"] == [0, 8, 16, 24] and state["stride"] == 8
    assert len(state["snapshots"]) == 4
    arrays, _ = reporter.results[PROBE, 25]
    assert arrays["trajectory_steps"].tolist() == [0, 8, 16, 24, 25]  # θ_s appended


@pytest.mark.parametrize("kind", ["pca", "interpolation"])
def test_resume_reproduces_the_same_surfaces(tmp_path: Path, kind: str) -> None:
    probe = {"every": 10, "kind": kind, "snapshot_every": 5}
    if kind == "interpolation":
        probe["dims"] = 1
    cfg = config(probe, steps=30, checkpoint_every=10)
    straight = Recorder()
    train(cfg, straight, hooks=build_hooks(cfg))
    first, resumed = Interrupt(15), Recorder()
    store = ReportedCheckpoints(tmp_path, 1, first)
    assert train(cfg, first, checkpoints=store, hooks=build_hooks(cfg)).status == "interrupted"
    assert torch.load(store.path, weights_only=True)["hooks"][PROBE]  # the trajectory / θ₀
    store.reporter = resumed
    train(cfg, resumed, checkpoints=store, hooks=build_hooks(cfg))
    # the timeline's events: checkpoints (periodic and at the interruption), the resume, and
    # one snapshot per stored surface (pca stores none before it has three snapshots)
    surfaces = [s for p, s in sorted(straight.results) if p == PROBE]
    assert surfaces == ([10, 20, 30] if kind == "pca" else [0, 10, 20, 30])
    assert sorted(first.events) == [("checkpoint.saved", 10), ("checkpoint.saved", 15)] + [
        ("landscape.snapshot", s) for s in surfaces if s <= 10
    ]
    assert sorted(resumed.events) == [("checkpoint.saved", 20), ("checkpoint.saved", 30)] + [
        ("landscape.snapshot", 20),
        ("landscape.snapshot", 30),
        ("run.resumed", 15),
    ]
    assert resumed.events["run.resumed", 15] == {"from_step": 15}
    snapshot = resumed.events["landscape.snapshot", 20]
    assert snapshot["center_loss"] == resumed.points[20]["landscape.center_loss"]
    for step in (20, 30):
        got, want = resumed.results[PROBE, step][0], straight.results[PROBE, step][0]
        assert sorted(got) == sorted(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)


def test_interpolation_runs_from_initialization_to_now() -> None:
    cfg = config({"every": 20, "kind": "interpolation", "dims": 1, "resolution": 5})
    reporter, after = Recorder(), Snapshot()
    train(cfg, reporter, hooks=[*build_hooks(cfg), after])
    arrays, meta = reporter.results[PROBE, 20]
    np.testing.assert_allclose(arrays["coords"], [0.0, 0.5, 1.0, 1.5, 2.0])  # α = 1 ± range
    assert arrays["loss"].shape == (5,) and meta["kinds"] == ["interpolation"]
    for alpha_index, step in ((0, 0), (2, 20)):  # α = 0: θ₀, α = 1: θ_s
        model, _, _, ctx = after.taken[step]
        model.eval()
        with torch.no_grad():
            x, y = eval_data(ctx)[0]
            want = float(ctx.task.loss_fn(model(x), y))
        assert arrays["loss"][alpha_index] == pytest.approx(want, rel=1e-5)


def test_hessian_axes_curvature_is_the_top_eigenvalue() -> None:
    """On a smooth network the second difference along the top eigenvector is λ_1.

    (Not on the registry's ReLU networks: there the kinks the Hessian does not see make the
    second difference differ from λ_1 by 25 % on the digits CNN, even in float64.)
    """
    cfg = config({"every": 1, "kind": "hessian", "range": 0.02, "resolution": 3})
    generator = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(200, 6, generator=generator),
        torch.randint(0, 3, (200,), generator=generator),
    )
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    task = Task(x, y, x, y, model, 3)
    reporter, optimizer = Recorder(), torch.optim.SGD(model.parameters(), lr=0.1)
    ServiceHook("landscape")(
        StepContext(0, cfg, task, model, optimizer, torch.device("cpu"), reporter, 0.1)
    )
    data = [
        fixed_subset(task.train_x, task.train_y, EVAL, cfg.seed + SEED_OFFSET, torch.device("cpu"))
    ]
    top = top_eigenvalues(model, task.loss_fn, data, k=2, tol=1e-6)
    arrays, meta = reporter.results[PROBE, 0]
    assert meta["eigenvalues"] == pytest.approx(top.eigenvalues.tolist(), rel=1e-3)
    assert top.eigenvalues[0] > 1.1 * top.eigenvalues[1]  # the largest second difference: axis 0
    assert reporter.points[0]["landscape.curvature"] == pytest.approx(
        float(top.eigenvalues[0]), rel=1e-2
    )
    assert meta["cost"]["n_hvp"] > 0


def test_probe_leaves_training_unchanged() -> None:
    with_probe = config({"every": 5, "kind": "random"})
    without = with_probe.model_copy(update={"probes": type(with_probe.probes)()})
    finals = []
    for cfg in (with_probe, without):
        keep = Snapshot()
        train(cfg, Recorder(), hooks=[*build_hooks(cfg), keep])
        finals.append(keep.taken[20][0].state_dict())
    for name, value in finals[0].items():
        assert torch.equal(value, finals[1][name]), name


def test_large_models_store_no_directions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.probe_hooks.landscape.STORE_MAX_PARAMETERS", 100)
    cfg = config({"every": 20, "kind": "random"})
    reporter = Recorder()
    train(cfg, reporter, hooks=[ServiceHook("landscape")])
    assert reporter.results[PROBE, 20][1]["directions_stored"] is False
    assert (DIRECTIONS, 20) not in reporter.results


def test_preset_runs_pca_surfaces() -> None:
    (preset,) = [p for p in PRESETS if p["name"].startswith("loss landscape")]
    cfg = RunConfig.model_validate(preset["config"] | {"device": "cpu"})
    reporter = Recorder()
    train(cfg, reporter, hooks=build_hooks(cfg))
    steps = sorted(s for p, s in reporter.results if p == PROBE)
    assert steps and steps[-1] == cfg.steps
    arrays, _ = reporter.results[PROBE, cfg.steps]
    assert arrays["loss"].shape == (cfg.probes.landscape.resolution,) * 2
    assert arrays["trajectory"].shape[0] >= 10
    assert reporter.points[cfg.steps]["train.acc"] > 0.9


@pytest.mark.parametrize("kind", ["random", "pca", "hessian"])
def test_diverged_run_reports_nan_instead_of_failing(kind: str) -> None:
    cfg = config({"every": 5, "kind": kind, "snapshot_every": 1}, steps=10)
    optimizer = cfg.optimizer.model_copy(update={"lr": 1e30})
    cfg = cfg.model_copy(update={"optimizer": optimizer, "on_divergence": "continue"})
    reporter = Recorder()
    assert train(cfg, reporter, hooks=build_hooks(cfg)).status == "completed"
    assert np.isnan(reporter.points[10]["landscape.center_loss"])
    assert (PROBE, 10) not in reporter.results


@pytest.mark.parametrize(
    ("probe", "field"),
    [
        ({"resolution": 53}, "resolution"),
        ({"resolution": 20}, "resolution must be odd"),
        ({"range": 0}, "range"),
        ({"eval_size": 10**5}, "eval_size"),
        ({"kind": "sideways"}, "kind"),
        ({"dims": 3}, "dims"),
        ({"kind": "interpolation"}, r"dims\n  interpolation"),
        ({"bn": "batch"}, "bn"),
        ({"max_snapshots": 10**4}, "max_snapshots"),
        ({"resolution": 51, "eval_size": 1024}, "single-example forward passes"),
        ({"kind": "hessian", "eval_size": 2048}, "above the limit 2000000"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_absurd_landscape_configs_are_rejected(probe: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RunConfig.model_validate({"probes": {"landscape": probe}})


def test_largest_allowed_grid_is_accepted() -> None:
    probe = RunConfig.model_validate(
        {"probes": {"landscape": {"resolution": 51, "eval_size": 768}}}
    ).probes.landscape
    assert probe.example_forwards == (51 * 51 + 1) * 768


def test_refined_surface_is_the_librarys_with_its_evaluated_points() -> None:
    cfg = config({"every": 20, "kind": "random", "resolution": 21, "refine": {"coarse": 7}})
    after, reporter = Snapshot(), Recorder()
    train(cfg, reporter, hooks=[*build_hooks(cfg), after])
    model, _, _, ctx = after.taken[20]
    coords = np.linspace(-1, 1, 21)
    data = eval_data(ctx)
    want = surface(
        model, ctx.task.loss_fn, data, ("random", "random"), coords, seed=2, refine=(7, 0.4)
    )
    arrays, meta = reporter.results[PROBE, 20]
    np.testing.assert_allclose(arrays["loss"], want.loss, rtol=1e-6)
    np.testing.assert_allclose(arrays["evaluated"], want.evaluated, rtol=0, atol=1e-7)
    np.testing.assert_allclose(arrays["evaluated_loss"], want.evaluated_loss, rtol=1e-6)
    assert meta["refine"]["coarse"] == 7 and meta["refine"]["fraction"] <= 0.4 + 4 / 21**2
    assert meta["cost"]["n_points"] == len(arrays["evaluated"]) < 0.41 * 21**2
    model.eval()
    with torch.no_grad():
        current = float(ctx.task.loss_fn(model(data[0][0]), data[0][1]))
    assert reporter.points[20]["landscape.center_loss"] == pytest.approx(current, rel=1e-6)
