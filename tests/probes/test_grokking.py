"""Grokking detection on synthetic and real curves; progress measures against references."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from worker.probes.grokking import (
    GrokkingMonitor,
    detect,
    empirical_ntk,
    fourier_sparsity,
    ntk_alignment,
    relative_change,
    snapshot,
    weight_norm,
)

STEPS = np.arange(0, 10_001, 50)
SEED = 0


def sigmoid_curve(midpoint: float, width: float = 100.0, low: float = 0.01) -> np.ndarray:
    """Accuracy rising from ``low`` to 1 around ``midpoint``; crosses 0.95 at ``crossing()``."""
    return low + (1 - low) / (1 + np.exp(-(STEPS - midpoint) / width))


def crossing(midpoint: float, width: float = 100.0, low: float = 0.01, at: float = 0.95) -> float:
    return midpoint + width * np.log((at - low) / (1 - at))


def first_logged_after(step: float) -> int:
    return int(STEPS[step <= STEPS][0])


def test_clear_grokking_is_found_at_the_right_steps():
    r = detect(STEPS, sigmoid_curve(200, width=50), sigmoid_curve(5_000, width=300))
    assert r.memorization_step == first_logged_after(crossing(200, width=50))
    assert r.generalization_step == first_logged_after(crossing(5_000, width=300))
    assert 0 <= r.generalization_step - crossing(5_000, width=300) < 50
    assert r.delay == r.generalization_step - r.memorization_step > 4_000
    assert r.is_grokking
    assert r.memorized_at == r.memorization_step + 4 * 50


def test_train_and_test_rising_together_is_not_grokking():
    r = detect(STEPS, sigmoid_curve(300), sigmoid_curve(400))
    assert r.memorization_step == first_logged_after(crossing(300))
    assert r.generalization_step == first_logged_after(crossing(400))
    assert not r.is_grokking


def test_never_generalizing_gives_none():
    r = detect(STEPS, sigmoid_curve(300), np.full(len(STEPS), 0.3))
    assert r.memorization_step is not None
    assert r.generalization_step is None and r.delay is None and not r.is_grokking
    assert (
        detect(STEPS, np.full(len(STEPS), 0.2), np.full(len(STEPS), 0.2)).memorization_step is None
    )


def test_crossings_that_fall_back_are_not_counted_until_held():
    test = sigmoid_curve(6_000)
    test[40] = 0.97  # a single point above the threshold at step 2000
    test[60:64] = 0.96  # four points at 3000..3150, one short of hold=5
    r = detect(STEPS, sigmoid_curve(300), test, hold=5)
    assert r.generalization_step == first_logged_after(crossing(6_000))
    assert detect(STEPS, sigmoid_curve(300), test, hold=4).generalization_step == 3_000
    assert detect(STEPS, sigmoid_curve(300), test, hold=1).generalization_step == 2_000


def test_noise_near_the_threshold_does_not_trigger_early():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.03, (2, len(STEPS)))
    train = np.clip(sigmoid_curve(200, width=50) + noise[0], 0, 1)
    test = np.clip(0.9 + 0.1 * sigmoid_curve(5_000) + noise[1], 0, 1)  # hovers near 0.95
    assert detect(STEPS, train, test, hold=1).generalization_step < 4_000
    for r in (detect(STEPS, train, test), detect(STEPS, train, test, window=5, hold=3)):
        assert 4_500 < r.generalization_step < 5_500, r
        assert abs(r.memorization_step - crossing(200, width=50)) < 300
        assert r.is_grokking


def test_online_events_fire_once_with_the_offline_steps():
    train, test = sigmoid_curve(200, width=50), sigmoid_curve(5_000, width=300)
    test[::7] = np.nan  # test accuracy not evaluated at every logged step
    offline = detect(STEPS, train, test)
    monitor = GrokkingMonitor()
    events = []
    for step, tr, te in zip(STEPS, train, test, strict=True):
        for event in monitor.update(int(step), tr, None if np.isnan(te) else te):
            assert event.detected_at == step
            events.append(event)
    assert [e.kind for e in events] == ["grokking.memorized", "grokking.generalized"]
    memorized, generalized = events
    assert memorized.step == offline.memorization_step
    assert generalized.step == offline.generalization_step
    assert generalized.delay == offline.delay and generalized.is_grokking
    assert monitor.result() == offline
    with pytest.raises(ValueError, match="increase"):
        monitor.update(int(STEPS[-1]), 1.0, 1.0)


def modular_data(p: int, train_fraction: float, seed: int):
    pairs = torch.cartesian_prod(torch.arange(p), torch.arange(p))
    labels = pairs.sum(1) % p
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    cut = int(train_fraction * p * p)
    return pairs[order[:cut]], labels[order[:cut]], pairs[order[cut:]], labels[order[cut:]]


@pytest.fixture(scope="module")
def grokked():
    """Modular addition, p = 23: an MLP over learned embeddings, AdamW, full batch.

    Trains until the monitor confirms generalization, then 500 steps of clean-up.  With this
    configuration seeds 0–4 all grok (generalization at steps 780–2,120, memorization at 60) and
    satisfy the assertions below; ``SEED`` picks one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    p = 23
    x, y, x_test, y_test = modular_data(p, 0.6, seed=SEED)
    torch.manual_seed(SEED)
    model = nn.Sequential(
        nn.Embedding(p, 16), nn.Flatten(), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, p)
    )
    initial = snapshot(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.5, betas=(0.9, 0.98))
    monitor, events, stop = GrokkingMonitor(), [], 4_000
    for step in range(4_000):
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            with torch.no_grad():
                train_acc = (logits.argmax(1) == y).float().mean().item()
                test_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
            events += monitor.update(step, train_acc, test_acc)
            if len(events) == 2:
                stop = min(stop, step + 500)
        if step >= stop:
            break
    torch.set_num_threads(threads)
    return {
        "model": model,
        "initial": initial,
        "result": monitor.result(),
        "test": (x_test, y_test),
    }


def test_modular_addition_groks(grokked):
    r = grokked["result"]
    assert r.memorization_step is not None and r.memorization_step < 200
    assert r.generalization_step is not None and r.is_grokking


def test_grokked_embeddings_are_fourier_sparse(grokked):
    model, initial = grokked["model"], grokked["initial"]
    before = fourier_sparsity(initial["0.weight"], k=4)
    after = fourier_sparsity(model[0].weight, k=4)
    assert before.sparsity < 0.55 and after.sparsity > 0.75
    assert (1 - after.sparsity) < (1 - before.sparsity) / 2.5
    assert relative_change(model, initial).total > 0.5


def test_fourier_sparsity_of_constructed_embeddings():
    p, d = 29, 24
    g = torch.Generator().manual_seed(0)
    residues = torch.arange(p, dtype=torch.float64)
    waves = torch.stack(
        [f(2 * torch.pi * k * residues / p) for k in (3, 7) for f in (torch.cos, torch.sin)], 1
    )
    mixed = waves @ torch.randn(4, d, generator=g, dtype=torch.float64) + 0.7
    r = fourier_sparsity(mixed, k=2)
    assert r.sparsity == pytest.approx(1.0, abs=1e-12)
    assert sorted(r.frequencies) == [3, 7]
    assert r.energy.sum() == pytest.approx(float((mixed - mixed.mean(0)).square().sum()))
    noise = torch.randn(p, 256, generator=g, dtype=torch.float64)
    assert fourier_sparsity(noise, k=2).sparsity == pytest.approx(2 / 14, rel=0.3)
    extra = torch.cat([mixed, torch.randn(1, d, generator=g, dtype=torch.float64)])
    assert fourier_sparsity(extra, k=2, p=p).sparsity == pytest.approx(1.0, abs=1e-12)


def test_weight_norm_and_relative_change():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    norms = weight_norm(model)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert norms.total == pytest.approx(float(flat.norm()), rel=1e-6)
    expected = torch.cat([model[0].weight.flatten(), model[0].bias]).detach().norm()
    assert norms.per_layer["0"] == pytest.approx(float(expected), rel=1e-6)
    assert set(norms.per_layer) == {"0", "2"}
    initial = snapshot(model)
    assert relative_change(model, initial).total == 0.0
    with torch.no_grad():
        model[2].weight.mul_(1.5)
        model[2].bias.mul_(1.5)
    change = relative_change(model, initial)
    assert change.per_layer == {"0": 0.0, "2": pytest.approx(0.5, rel=1e-6)}
    assert 0 < change.total < 0.5


def dense_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``Σ_c J_c J_cᵀ`` from the explicit ``(n·C) × P`` Jacobian of ``torch.autograd``."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def outputs(theta: torch.Tensor) -> torch.Tensor:
        chunks = theta.split([s.numel() for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return functional_call(model, params, (x,))

    jac = torch.autograd.functional.jacobian(outputs, flat)  # (n, C, P)
    return torch.einsum("icp,jcp->ij", jac, jac)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    return model, x, torch.tensor([0, 1, 2, 3, 0, 1, 1])


@pytest.mark.parametrize("chunk_size", [1, 3, None])
def test_empirical_ntk_matches_the_dense_jacobian(tiny, chunk_size):
    model, x, _ = tiny
    kernel = empirical_ntk(model, x, chunk_size=chunk_size)
    torch.testing.assert_close(kernel, dense_ntk(model, x), rtol=1e-10, atol=1e-12)


def test_projected_ntk_is_unbiased_within_its_standard_error(tiny):
    model, x, _ = tiny
    exact = dense_ntk(model, x)
    draws = torch.stack([empirical_ntk(model, x, projections=1, seed=s) for s in range(64)])
    standard_error = draws.std(0) / 64**0.5
    assert ((draws.mean(0) - exact).abs() <= 4 * standard_error + 1e-12).all()
    averaged = empirical_ntk(model, x, projections=64, seed=100)
    assert ((averaged - exact).abs() <= 4 * standard_error + 1e-12).all()


@pytest.mark.parametrize("centered", [True, False])
def test_ntk_alignment_matches_the_reference(tiny, centered):
    model, x, y = tiny
    kernel = dense_ntk(model, x).numpy()
    onehot = np.eye(4)[y.numpy()]
    onehot -= onehot.mean(0)
    target = onehot @ onehot.T
    if centered:
        h = np.eye(7) - 1 / 7
        kernel = h @ kernel @ h
    expected = np.sum(kernel * target) / (np.linalg.norm(kernel) * np.linalg.norm(target))
    r = ntk_alignment(model, x, y, centered=centered)
    assert r.alignment == pytest.approx(expected, rel=1e-10)
    assert (r.examples, r.gradient_rows) == (7, 28)
    assert ntk_alignment(model, x, y, max_examples=5).examples == 5


def test_ntk_alignment_rises_as_the_model_groks(grokked):
    model = grokked["model"]
    initial = copy.deepcopy(model)
    initial.load_state_dict(grokked["initial"])
    x, y = grokked["test"]
    before, after = (ntk_alignment(m, x, y, max_examples=64) for m in (initial, model))
    assert after.alignment > before.alignment + 0.05
    assert (after.examples, after.gradient_rows) == (64, 64 * 23)
