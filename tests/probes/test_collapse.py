"""Neural collapse against a dense float64 reference written straight from Papyan et al. (2020)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from worker.probes.collapse import CollapseAccumulator, NeuralCollapse, collect, neural_collapse

SCALARS = (
    "nc1",
    "equinorm",
    "equiangular",
    "max_angle",
    "nc3",
    "nc4",
    "equinorm_classifier",
    "equiangular_classifier",
)


def reference(h, y, w=None, b=None, global_mean="samples", predictions=None):
    """NC1–NC4 from the definitions, everything in memory, with ``np.linalg.pinv``.

    NC4 compares the nearest class centre with ``predictions``, else with ``argmax(W h + b)``.
    """
    h, y = np.asarray(h, np.float64), np.asarray(y)
    classes = np.unique(y)
    c = len(classes)
    mu = np.stack([h[y == k].mean(0) for k in classes])
    mu_g = h.mean(0) if global_mean == "samples" else mu.mean(0)
    m = mu - mu_g
    within = h - mu[np.searchsorted(classes, y)]
    sigma_w = within.T @ within / len(h)
    sigma_b = m.T @ m / c
    out = {"nc1": np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / c}
    out["equinorm"], out["equiangular"], out["max_angle"], out["cosines"] = frame(m)
    if w is not None:
        w = np.asarray(w, np.float64)
        wp = w[classes]
        out["equinorm_classifier"], out["equiangular_classifier"], _, _ = frame(wp)
        out["nc3"] = np.sum((wp / np.linalg.norm(wp) - m / np.linalg.norm(m)) ** 2)
        if predictions is None:
            predictions = (h @ w.T + (0.0 if b is None else np.asarray(b))).argmax(1)
    if predictions is not None:
        nearest = classes[np.argmin(((h[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)]
        out["nc4"] = np.mean(np.asarray(predictions) != nearest)
    return out


def frame(rows):
    norms = np.linalg.norm(rows, axis=1)
    cos = (rows / norms[:, None]) @ (rows / norms[:, None]).T
    off = cos[~np.eye(len(rows), dtype=bool)]
    return norms.std() / norms.mean(), off.std(), np.abs(off + 1 / (len(rows) - 1)).mean(), cos


def assert_matches(result: NeuralCollapse, expected: dict, rel: float = 1e-8) -> None:
    for name in SCALARS:
        if name in expected:
            assert getattr(result, name) == pytest.approx(expected[name], rel=rel, abs=1e-12), name
        else:
            assert getattr(result, name) is None, name
    np.testing.assert_allclose(result.cosines, expected["cosines"], rtol=rel, atol=1e-12)


def mixture(counts, dim=12, spread=0.5, seed=0):
    """Gaussian classes with random means; ``counts[c]`` examples of class ``c``, shuffled."""
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(len(counts), dim, generator=g, dtype=torch.float64) + 1.0
    y = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    y = y[torch.randperm(len(y), generator=g)]
    h = means[y] + spread * torch.randn(len(y), dim, generator=g, dtype=torch.float64)
    w = torch.randn(len(counts), dim, generator=g, dtype=torch.float64)
    return h, y, w, torch.randn(len(counts), generator=g, dtype=torch.float64)


def simplex_etf(c=6, dim=10, per_class=5, seed=0):
    """Features at the vertices of a rotated, shifted simplex ETF, and the classifier ``W = M``.

    The bias ``b = −M μ_G`` makes ``W h + b = M (h − μ_G)``: the shift is not the classifier's.
    """
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    vertices = (torch.eye(c, dtype=torch.float64) - 1 / c) @ rotation[:c] * 3.0
    y = torch.arange(c).repeat(per_class)
    shift = torch.full((dim,), 5.0, dtype=torch.float64)
    return vertices[y] + shift, y, vertices, -vertices @ shift


def test_simplex_etf_is_fully_collapsed():
    h, y, m, b = simplex_etf()
    r = neural_collapse(h, y, m, b)
    for name in ("nc1", "equinorm", "equiangular", "max_angle", "nc3", "equinorm_classifier"):
        assert abs(getattr(r, name)) < 1e-6, name
    assert r.nc4 == 0.0
    np.testing.assert_allclose(r.cosines[~np.eye(6, dtype=bool)], -1 / 5, atol=1e-12)


def test_nc1_rises_with_the_within_class_variance():
    h, y, m, b = simplex_etf(per_class=40)
    noise = torch.randn(h.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigmas = [0.01, 0.03, 0.1, 0.3, 1.0]
    nc1 = [neural_collapse(h + s * noise, y, m, b).nc1 for s in sigmas]
    assert all(a < b for a, b in zip(nc1, nc1[1:], strict=False))
    # NC1 is quadratic in the noise scale while the class means barely move.
    assert nc1[1] / nc1[0] == pytest.approx(9.0, rel=0.05)


def test_random_gaussian_features_are_far_from_collapse():
    g = torch.Generator().manual_seed(2)
    h = torch.randn(600, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (600,), generator=g)
    r = neural_collapse(h, y, torch.randn(6, 16, generator=g, dtype=torch.float64))
    assert r.nc1 > 10.0
    assert r.max_angle > 0.1 and r.equiangular > 0.1
    assert r.nc3 > 0.5 and r.nc4 > 0.5


def test_consistently_permuted_labels_change_nothing():
    h, y, w, b = mixture([30, 40, 50, 60], seed=3)
    perm = torch.tensor([2, 0, 3, 1])
    inverse = torch.argsort(perm)
    base = neural_collapse(h, y, w, b)
    permuted = neural_collapse(h, perm[y], w[inverse], b[inverse])
    for name in SCALARS:
        assert getattr(permuted, name) == pytest.approx(getattr(base, name), rel=1e-10), name
    np.testing.assert_allclose(permuted.cosines[perm][:, perm], base.cosines, atol=1e-12)


@pytest.mark.parametrize("global_mean", ["samples", "classes"])
def test_imbalanced_classes_match_the_dense_reference(global_mean):
    h, y, w, b = mixture([5, 40, 300, 12], seed=4)
    r = neural_collapse(h, y, w, b, global_mean=global_mean)
    assert_matches(r, reference(h, y, w, b, global_mean))
    assert r.counts.tolist() == [5, 40, 300, 12] and r.examples == 357


def test_global_mean_options_differ_only_for_imbalanced_classes():
    for counts, differ in (([50, 50, 50], False), ([10, 50, 200], True)):
        h, y, _, _ = mixture(counts, seed=5)
        samples = neural_collapse(h, y).nc1
        classes = neural_collapse(h, y, global_mean="classes").nc1
        assert (abs(samples - classes) > 1e-6 * samples) is differ


def test_absent_classes_are_left_out():
    h, y, w, b = mixture([20, 30, 25, 40], seed=6)
    keep = y != 2
    r = neural_collapse(h[keep], y[keep], w, b)
    assert r.classes.tolist() == [0, 1, 3]
    assert_matches(r, reference(h[keep], y[keep], w, b))


@pytest.mark.parametrize("batch", [1, 7, 64, 10_000])
def test_streaming_equals_in_memory(batch):
    h, y, w, b = mixture([31, 57, 80, 12, 20], seed=7)
    expected = neural_collapse(h, y, w, b)
    acc = CollapseAccumulator(5, classifier_weight=w, classifier_bias=b)
    for i in range(0, len(y), batch):
        acc.add_means(h[i : i + batch], y[i : i + batch])
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(batch))
    for i in range(0, len(y), batch):
        acc.add_scatter(h[order[i : i + batch]], y[order[i : i + batch]])
    assert_matches(acc.result(), {n: getattr(expected, n) for n in (*SCALARS, "cosines")})


def test_a_second_pass_over_other_examples_is_refused():
    h, y, _, _ = mixture([20, 20, 20], seed=8)
    acc = CollapseAccumulator(3)
    acc.add_means(h, y)
    acc.add_scatter(h[:-1], y[:-1])
    with pytest.raises(ValueError, match="other examples"):
        acc.result()
    acc = CollapseAccumulator(3)
    acc.add_means(h, y)
    acc.add_scatter(h + 0.1, y)
    with pytest.raises(ValueError, match="other features"):
        acc.result()


def test_projection_is_bounded_and_consistent():
    h, y, _, _ = mixture([100, 3, 60], seed=9)
    r = neural_collapse(h, y, max_points_per_class=10)
    p = r.projection
    assert np.bincount(p.labels).tolist() == [10, 3, 10]
    np.testing.assert_allclose(p.axes @ p.axes.T, np.eye(2), atol=1e-12)
    first = [np.flatnonzero(y.numpy() == c)[:10] for c in range(3)]
    mu_g = h.mean(0).numpy()
    for c in range(3):
        np.testing.assert_allclose(
            p.points[p.labels == c], (h.numpy()[first[c]] - mu_g) @ p.axes.T, rtol=1e-5
        )
    centred_means = np.stack([h[y == c].mean(0).numpy() - mu_g for c in range(3)])
    np.testing.assert_allclose(p.means, centred_means @ p.axes.T, atol=1e-12)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 5)
    ).double()


def test_collect_hooks_layers_and_matches_in_memory():
    model = mlp()
    h, y, _, _ = mixture([30, 25, 40, 18, 27], seed=10)
    batches = [(h[i : i + 32], y[i : i + 32]) for i in range(0, len(y), 32)]
    model.train()
    model[0].eval()
    results = collect(model, batches, layers=["2", "5"], max_examples=130)
    assert model.training and not model[0].training and model[4].training
    with torch.no_grad():
        x, labels = h[:130], y[:130]
        penultimate = model[:5].eval()(x)
        hidden = model[:2](x)
        predicted = model.eval()(x).argmax(1)
    head = model[5]
    assert_matches(
        results["5"], reference(penultimate, labels, head.weight.detach(), head.bias.detach())
    )
    depth = results["2"]
    assert depth.nc3 is None and depth.examples == 130
    expected = reference(hidden, labels, predictions=predicted)
    assert depth.nc1 == pytest.approx(expected["nc1"], rel=1e-8)
    assert depth.nc4 == pytest.approx(expected["nc4"]) and 0 < depth.nc4 < 1
    assert results["5"].forward_passes == 2 * 5
    default = collect(model, batches)
    assert list(default) == ["5"] and default["5"].examples == len(y)
