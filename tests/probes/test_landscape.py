"""Loss-landscape probe against closed forms and an independent point-by-point evaluation.

The references share no code with ``worker.probes.landscape``: the quadratic's values are
analytic, the point-by-point loss loads each grid point's weights into a copy of the model (and,
for re-estimated BatchNorm statistics, runs it in train mode with ``momentum=None``), and the
PCA is checked against scikit-learn's.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch import Tensor, nn

from tests.probes.reference import cnn, digits, mlp, train
from worker.probes.directions import (
    normalize_direction,
    random_direction,
    trajectory_pca,
)
from worker.probes.landscape import interpolate, surface

CE = nn.CrossEntropyLoss()
COORDS = np.linspace(-1.0, 1.0, 5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Quadratic(nn.Module):
    """f(theta) = 1/2 theta^T A theta + b^T theta, whatever the input."""

    def __init__(self, a: Tensor, b: Tensor, theta: Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("b", b)
        self.theta = nn.Parameter(theta.clone())

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * self.theta @ self.a @ self.theta + self.b @ self.theta


def quadratic() -> tuple[Quadratic, Tensor, Tensor]:
    """A 6-D indefinite quadratic with known spectrum; returns it with eigenvalues and vectors."""
    gen = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    eigenvalues = torch.tensor([5.0, 2.0, 1.0, 0.5, -0.3, -1.5], dtype=torch.float64)
    a = q @ torch.diag(eigenvalues) @ q.T
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    theta = torch.randn(6, generator=gen, dtype=torch.float64)
    return Quadratic((a + a.T) / 2, b, theta), eigenvalues, q


def value(out: Tensor, _targets: Tensor) -> Tensor:
    return out


QUAD_DATA = [(torch.zeros(1, dtype=torch.float64), torch.zeros(1))]


def analytic(model: Quadratic, directions: list[Tensor], coords: np.ndarray) -> np.ndarray:
    """f(theta + sum_k c_k d_k) on the grid, by the closed form, in float64."""
    a, b, theta = model.a, model.b, model.theta.detach()
    grids = np.meshgrid(*([coords] * len(directions)), indexing="ij")
    out = np.empty(grids[0].shape)
    for index in np.ndindex(out.shape):
        point = theta + sum(float(g[index]) * d for g, d in zip(grids, directions, strict=True))
        out[index] = float(0.5 * point @ a @ point + b @ point)
    return out


def pointwise(
    model: nn.Module,
    data: list[tuple[Tensor, Tensor]],
    directions: tuple[dict[str, Tensor], ...],
    coords: np.ndarray,
    recompute_bn: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy at every grid point, one model copy per point."""
    n = sum(len(y) for _, y in data)
    shape = (len(coords),) * len(directions)
    loss, accuracy = np.empty(shape), np.empty(shape)
    for index in np.ndindex(shape):
        point = copy.deepcopy(model)
        with torch.no_grad():
            for name, p in point.named_parameters():
                for c, d in zip(index, directions, strict=True):
                    p.add_(float(coords[c]) * d[name].to(p.dtype))
        if recompute_bn:
            point.eval()
            for m in point.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.momentum = None
                    m.train()
            with torch.no_grad():
                for x, _ in data:
                    point(x)
        point.eval()
        with torch.no_grad():
            outs = [(point(x), y) for x, y in data]
        loss[index] = sum(len(y) / n * float(CE(o, y)) for o, y in outs)
        accuracy[index] = sum(int((o.argmax(1) == y).sum()) for o, y in outs) / n
    return loss, accuracy


def current_loss(model: nn.Module, data: list[tuple[Tensor, Tensor]]) -> float:
    model.eval()
    n = sum(len(y) for _, y in data)
    with torch.no_grad():
        return sum(len(y) / n * float(CE(model(x), y)) for x, y in data)


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model: nn.Module, before: dict[str, Tensor]) -> bool:
    after = model.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def trained_cnn(dtype: torch.dtype = torch.float64) -> tuple[nn.Module, list]:
    """The reference CNN after a few train-mode steps, so BatchNorm statistics are non-trivial."""
    model, data = cnn(dtype=dtype), digits(96, image=True, batches=3, dtype=dtype)
    model.train()
    train(model, CE, data, steps=15)
    return model.eval(), data


# --- closed forms -----------------------------------------------------------------------------


def test_quadratic_along_eigenvector_axes_is_analytic() -> None:
    model, _, q = quadratic()
    axes = [q[:, 0], q[:, 5]]
    coords = np.linspace(-2.0, 1.5, 7)
    s = surface(model, value, QUAD_DATA, [{"theta": axes[0]}, {"theta": axes[1]}], coords)
    np.testing.assert_allclose(s.loss, analytic(model, axes, coords), rtol=1e-5, atol=0)
    line = surface(model, value, QUAD_DATA, [{"theta": axes[1]}], coords)
    np.testing.assert_allclose(line.loss, analytic(model, axes[1:], coords), rtol=1e-5, atol=0)
    assert s.accuracy is None and s.kinds == ("explicit", "explicit")


def test_hessian_directions_of_a_quadratic_are_its_top_eigenvectors() -> None:
    model, eigenvalues, q = quadratic()
    s = surface(model, value, QUAD_DATA, ["hessian", "hessian"], COORDS)
    np.testing.assert_allclose(s.eigenvalues, eigenvalues[:2].numpy(), rtol=1e-6)
    found = [d["theta"] for d in s.directions]
    for d, v in zip(found, [q[:, 0], q[:, 1]], strict=True):
        assert abs(float(d @ v)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(s.loss, analytic(model, found, COORDS), rtol=1e-5, atol=0)
    assert s.n_hvp > 0


def test_interpolation_is_the_straight_path_between_checkpoints() -> None:
    model, _, _ = quadratic()
    start = {"theta": torch.zeros(6, dtype=torch.float64)}
    alphas = np.linspace(-0.5, 1.5, 9)
    s = interpolate(model, value, QUAD_DATA, start, alphas=alphas)
    delta = model.theta.detach() - start["theta"]
    shifted = Quadratic(model.a, model.b, start["theta"])
    np.testing.assert_allclose(s.loss, analytic(shifted, [delta], alphas), rtol=1e-5, atol=0)
    assert s.loss[2] == pytest.approx(0.0, abs=1e-12)  # alpha = 0: f(0) = 0
    with torch.no_grad():
        end = float(model(QUAD_DATA[0][0]))
    assert s.loss[6] == pytest.approx(end, rel=1e-12)  # alpha = 1: the current weights


# --- filter normalization ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [mlp, cnn])
@pytest.mark.parametrize("rule", ["zero", "weights", "normalize"])
def test_filter_normalized_direction_matches_every_filter_norm(make, rule) -> None:
    model = make()
    weights = dict(model.named_parameters())
    d = random_direction(model, seed=1, bias_bn=rule)
    assert d.keys() == weights.keys()
    for name, w in weights.items():
        w = w.detach()
        if w.dim() > 1:
            rows, w_rows = d[name].reshape(len(w), -1), w.reshape(len(w), -1)
            np.testing.assert_allclose(rows.norm(dim=1), w_rows.norm(dim=1), rtol=1e-6)
            assert not torch.allclose(rows, w_rows)  # random, not a copy
        elif rule == "zero":
            assert not d[name].any()
        elif rule == "weights":
            assert torch.equal(d[name], w)
        else:
            assert float(d[name].norm()) == pytest.approx(float(w.norm()), rel=1e-6)


def test_layer_normalization_and_seeds() -> None:
    model = cnn()
    d = random_direction(model, seed=4, normalization="layer")
    for name, w in model.named_parameters():
        if w.dim() > 1:
            assert float(d[name].norm()) == pytest.approx(float(w.detach().norm()), rel=1e-6)
    again, other = random_direction(model, seed=4, normalization="layer"), random_direction(model)
    assert all(torch.equal(d[n], again[n]) for n in d)
    assert not torch.equal(d["0.weight"], other["0.weight"])
    raw = {n: torch.ones_like(w) for n, w in model.named_parameters()}
    kept = normalize_direction(raw, dict(model.named_parameters()), "none", "normalize")
    assert torch.equal(kept["0.weight"], raw["0.weight"])


# --- batched evaluation -----------------------------------------------------------------------


@pytest.mark.parametrize("points_per_pass", [1, 7, None])
def test_batched_equals_pointwise_on_an_mlp(points_per_pass) -> None:
    model, data = mlp(), digits(120, batches=3)
    train(model, CE, data, steps=20)
    model.train()  # dropout on: the probe must evaluate in eval mode and restore the flag
    before = snapshot(model)
    s = surface(model, CE, data, coords=COORDS, points_per_pass=points_per_pass, seed=2)
    loss, accuracy = pointwise(model, data, s.directions, COORDS)
    np.testing.assert_allclose(s.loss, loss, rtol=1e-5, atol=0)
    np.testing.assert_array_equal(s.accuracy, accuracy)
    assert unchanged(model, before) and model.training and model[2].training
    assert s.n_points == 25 and s.loss.shape == (5, 5)


@pytest.mark.parametrize("bn_stats", ["running", "recompute"])
@pytest.mark.parametrize(
    ("dtype", "per_pass"), [(torch.float64, 6), (torch.float32, 6), (torch.float32, 1)]
)
def test_batched_equals_pointwise_on_a_cnn_with_batchnorm(bn_stats, dtype, per_pass) -> None:
    model, data = trained_cnn(dtype)
    momentum, before = model[1].momentum, snapshot(model)
    s = surface(
        model,
        CE,
        data,
        coords=COORDS,
        bn_stats=bn_stats,
        bias_bn="normalize",
        points_per_pass=per_pass,
    )
    loss, accuracy = pointwise(model, data, s.directions, COORDS, bn_stats == "recompute")
    np.testing.assert_allclose(s.loss, loss, rtol=1e-5, atol=0)
    np.testing.assert_array_equal(s.accuracy, accuracy)
    assert unchanged(model, before) and model[1].momentum == momentum and not model.training
    assert s.bn_stats == bn_stats and s.metadata["bn_stats"] == bn_stats


def test_max_pooling_in_channels_last_on_the_cpu_gives_the_same_surface() -> None:
    """The CPU path pools in channels-last memory format (faster there); the values do not move."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10)
    )
    data = digits(96, image=True, batches=2, dtype=torch.float32)
    train(model, CE, data, steps=20)
    layouts: list[bool] = []
    model[2].register_forward_hook(
        lambda _m, i, _o: layouts.append(i[0].is_contiguous(memory_format=torch.channels_last))
    )
    s = surface(model, CE, data, coords=COORDS)
    grid_passes = layouts[1:]  # after the probe pass at the centre, which is not hooked
    assert len(grid_passes) == 2 * 25 and all(grid_passes)
    assert not model[2]._forward_pre_hooks  # removed again
    loss, accuracy = pointwise(model, data, s.directions, COORDS)
    np.testing.assert_allclose(s.loss, loss, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(s.accuracy, accuracy)


def test_recomputed_batchnorm_statistics_change_the_surface() -> None:
    model, data = trained_cnn()
    running = surface(model, CE, data, coords=COORDS, bias_bn="normalize")
    fresh = surface(model, CE, data, running.directions, COORDS, bn_stats="recompute")
    assert np.abs(running.loss - fresh.loss).max() > 1e-3


# --- trajectory PCA ---------------------------------------------------------------------------


def trajectory(model: nn.Module, data: list, n: int = 8) -> list[dict[str, Tensor]]:
    checkpoints = [snapshot(model)]
    for _ in range(n - 1):
        train(model, CE, data, steps=3, lr=3e-2)
        checkpoints.append(snapshot(model))
    return checkpoints


def flat(state: dict[str, Tensor], model: nn.Module) -> np.ndarray:
    return torch.cat([state[n].reshape(-1) for n, _ in model.named_parameters()]).numpy()


def test_trajectory_pca_against_scikit_learn() -> None:
    model, data = mlp(hidden=8), digits(64)
    checkpoints = trajectory(model, data)
    pca = trajectory_pca(model, checkpoints, steps=range(0, 24, 3))
    dirs = np.stack([flat(d, model) for d in pca.directions])
    np.testing.assert_allclose(dirs @ dirs.T, np.eye(2), atol=1e-10)
    ev = pca.explained_variance
    assert np.all((ev >= 0) & (ev <= 1)) and ev[0] >= ev[1] and ev.sum() <= 1 + 1e-12
    rows = np.stack([flat(c, model) for c in checkpoints]) - flat(checkpoints[-1], model)
    ref = PCA(n_components=2).fit(rows)
    np.testing.assert_allclose(ev, ref.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(np.abs(dirs @ ref.components_.T), np.eye(2), atol=1e-8)
    np.testing.assert_allclose(pca.coordinates, rows @ dirs.T, atol=1e-10)
    np.testing.assert_allclose(pca.coordinates[-1], 0.0, atol=1e-12)  # centre = last checkpoint
    assert list(pca.steps) == list(range(0, 24, 3))


def test_planar_trajectory_is_recovered_from_its_coordinates() -> None:
    model = mlp(hidden=8)
    centre = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(0)
    size = sum(p.numel() for p in model.parameters())
    basis, _ = torch.linalg.qr(torch.randn(size, 2, generator=gen, dtype=torch.float64))
    xy = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    base = torch.cat([p.detach().reshape(-1) for p in centre.values()])
    checkpoints = [base + basis @ c for c in xy]
    pca = trajectory_pca(model, checkpoints, since=2, steps=range(6))
    dirs = torch.stack([torch.cat([d[n].reshape(-1) for n in centre]) for d in pca.directions])
    rebuilt = base + torch.as_tensor(pca.coordinates) @ dirs
    for got, want in zip(rebuilt[[0, -1]], [checkpoints[2], checkpoints[-1]], strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-10)
    assert pca.explained_variance.sum() == pytest.approx(1.0, abs=1e-10)
    with pytest.raises(ValueError, match="at least 3"):
        trajectory_pca(model, checkpoints[:2])


def test_pca_surface_carries_the_projected_trajectory() -> None:
    model, data = mlp(hidden=8), digits(64)
    checkpoints = trajectory(model, data, n=5)
    s = surface(model, CE, data, ["pca", "random"], COORDS, trajectory=checkpoints)
    assert s.kinds == ("pca", "random") and s.explained_variance.shape == (1,)
    np.testing.assert_allclose(s.trajectory[-1, 0], 0.0, atol=1e-12)
    assert np.isnan(s.trajectory[:, 1]).all()
    assert s.loss[2, 2] == pytest.approx(current_loss(model, data), rel=1e-9)


# --- every surface -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kinds",
    [["random"], ["random", "random"], ["hessian"], ["hessian", "random"], ["pca", "pca"]],
)
def test_centre_of_every_surface_is_the_current_loss(kinds) -> None:
    model, data = mlp(hidden=8), digits(64, batches=2)
    checkpoints = trajectory(model, data, n=4)
    model.train()
    before = snapshot(model)
    s = surface(model, CE, data, kinds, COORDS, trajectory=checkpoints)
    centre = s.loss[(2,) * len(kinds)]
    assert unchanged(model, before) and model.training
    assert centre == pytest.approx(current_loss(model, data), rel=1e-9)
    assert s.loss.shape == (5,) * len(kinds) and s.accuracy.shape == s.loss.shape


def test_explicit_directions_recompute_and_extend_a_surface() -> None:
    model, data = trained_cnn(torch.float32)
    first = surface(model, CE, data, coords=COORDS, seed=7)
    again = surface(model, CE, data, coords=COORDS, seed=7)
    np.testing.assert_array_equal(first.loss, again.loss)
    wider = np.linspace(-2.0, 2.0, 9)  # contains COORDS
    extended = surface(model, CE, data, first.directions, wider)
    np.testing.assert_allclose(extended.loss[2:7, 2:7], first.loss, rtol=1e-6)
    assert extended.kinds == ("explicit", "explicit")
    assert surface(model, CE, data, coords=COORDS, seed=8).loss[0, 0] != first.loss[0, 0]
    meta = first.metadata
    assert meta["seed"] == 7 and meta["normalization"] == "filter" and meta["bias_bn"] == "zero"
    assert meta["cost"]["n_points"] == 25 and meta["cost"]["n_point_forwards"] >= 25 * 3


def test_bad_arguments_are_refused() -> None:
    model, data = mlp(), digits(16)
    with pytest.raises(ValueError, match="one or two"):
        surface(model, CE, data, ["random"] * 3, COORDS)
    with pytest.raises(ValueError, match="unknown direction"):
        surface(model, CE, data, ["sideways"], COORDS)
    with pytest.raises(ValueError, match="trajectory"):
        surface(model, CE, data, ["pca"], COORDS)
    with pytest.raises(ValueError, match="not parameters"):
        surface(model, CE, data, [{"nope": torch.zeros(1)}], COORDS)
