"""Opposing-signals probe: constructed cases with known answers, and a planted training run."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import nn

from tests.probes.reference import cnn, digits, mlp
from worker.probes.opposing import (
    MonitorSet,
    SpikeDetector,
    example_loss_from_bytes,
    find_groups,
    gradient_alignment,
    losses_from_bytes,
    losses_to_bytes,
    oscillation,
    per_example_losses,
)
from worker.training.models import mlp as mlp_task
from worker.training.opposing_data import OpposingSignals, make_opposing_signals

CE_NONE = nn.CrossEntropyLoss(reduction="none")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Small models on one thread: on a shared machine two oversubscribe the cores (~10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the batched monitor pass -------------------------------------------------------------------


@pytest.mark.parametrize("build", [mlp, cnn], ids=["mlp-dropout", "cnn-batchnorm"])
def test_batched_pass_equals_one_example_at_a_time(build: Callable[..., nn.Module]) -> None:
    image = build is cnn
    ((x, y),) = digits(200, dtype=torch.float32, image=image)
    model = build(0, dtype=torch.float32)
    model.train()  # dropout / batch statistics must be switched off by the pass, then restored
    result = per_example_losses(model, CE_NONE, x, y, batch_size=64, features="penultimate")
    assert model.training and all(m.training for m in model.modules())
    assert result.losses.dtype == np.float32 and result.n_examples == 200
    assert result.n_forward == 4
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        loop = np.array([CE_NONE(reference(x[i : i + 1]), y[i : i + 1]).item() for i in range(200)])
        penultimate = reference[:-1](x).flatten(1).numpy()
    np.testing.assert_allclose(result.losses, loop, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.features, penultimate, rtol=0, atol=1e-6)


def test_pass_rejects_a_mean_loss_and_returns_input_features() -> None:
    ((x, y),) = digits(40, dtype=torch.float32)
    model = mlp(0, dtype=torch.float32)
    with pytest.raises(ValueError, match="reduction='none'"):
        per_example_losses(model, nn.CrossEntropyLoss(), x, y)
    result = per_example_losses(model, CE_NONE, x, y, features="input")
    np.testing.assert_array_equal(result.features, x.numpy())


def test_monitor_set_is_a_seeded_subset() -> None:
    a, b = MonitorSet.choose(10_000, seed=3), MonitorSet.choose(10_000, seed=3)
    assert len(a) == 2048 and np.array_equal(a.indices, b.indices)
    assert np.all(np.diff(a.indices) > 0) and a.indices.max() < 10_000
    assert not np.array_equal(a.indices, MonitorSet.choose(10_000, seed=4).indices)
    assert len(MonitorSet.choose(100, size=2048)) == 100
    x, y = torch.randn(50, 3), torch.arange(50) % 2
    model = nn.Linear(3, 2)
    subset = MonitorSet.choose(50, size=7, seed=1)
    measured = subset.measure(model, CE_NONE, x, y)
    direct = per_example_losses(model, CE_NONE, x[subset.indices], y[subset.indices])
    np.testing.assert_array_equal(measured.losses, direct.losses)


# --- find_groups on constructed losses and features ---------------------------------------------


def constructed(seed: int = 0, n: int = 300, d: int = 24) -> dict[str, np.ndarray]:
    """Losses, features and labels with three rising and three falling blocks of 8 examples.

    Blocks: R (rising, label 0, along p) and F (falling, label 1, along p) are the opposing pair;
    R2 (rising, label 2, along q) and F2 (falling, label 2, along q) share a direction and a
    label; F3 (falling, label 3, along -p) points away from R.  The rest is small noise.
    """
    rng = np.random.default_rng(seed)
    p, q = np.eye(d)[0], np.eye(d)[1]
    before = rng.uniform(0.5, 1.5, n)
    delta = rng.normal(0, 0.01, n)
    features = rng.normal(0, 1, (n, d))
    labels = rng.integers(0, 4, n)
    order = rng.permutation(n)
    blocks = {name: order[8 * i : 8 * i + 8] for i, name in enumerate(["R", "F", "R2", "F2", "F3"])}
    for name, sign, label, direction in [
        ("R", 1, 0, p),
        ("F", -1, 1, p),
        ("R2", 1, 2, q),
        ("F2", -1, 2, q),
        ("F3", -1, 3, -p),
    ]:
        idx = blocks[name]
        delta[idx] = sign * rng.uniform(1.0, 2.0, 8)
        features[idx] += 12 * direction
        labels[idx] = label
    return {
        "before": before,
        "after": before + delta,
        "features": features,
        "labels": labels,
        **blocks,
    }


def test_find_groups_returns_the_known_top_and_bottom_sets() -> None:
    rng = np.random.default_rng(1)
    before = rng.uniform(0, 1, 500)
    delta = rng.normal(0, 0.01, 500)
    up, down = rng.choice(500, 10, replace=False).reshape(2, 5)
    delta[up] = [5.0, 4.0, 3.0, 2.0, 1.0]
    delta[down] = [-5.0, -4.0, -3.0, -2.0, -1.0]
    labels = np.arange(500) % 3
    out = find_groups(before, before + delta, labels=labels, k=5)
    np.testing.assert_array_equal(out.rising, up)
    np.testing.assert_array_equal(out.falling, down)
    rising, falling = out.groups
    assert (rising.kind, falling.kind) == ("rising", "falling") and out.pairs == ()
    assert rising.share == pytest.approx(15.0 / np.abs(delta).sum(), rel=1e-6)
    assert rising.mean_change == pytest.approx(3.0, rel=1e-6)
    expected = dict(zip(*np.unique(labels[up], return_counts=True), strict=True))
    assert rising.label_counts == {int(k): int(v) for k, v in expected.items()}
    assert rising.mean_direction is None and rising.coherence is None
    assert out.total_change == pytest.approx(np.abs(delta).sum(), rel=1e-9)


def test_find_groups_counts_only_real_rises_and_ignores_non_finite_changes() -> None:
    before = np.array([1.0, 1.0, 1.0, 1.0])
    after = np.array([2.0, np.inf, 0.5, 1.0])
    out = find_groups(before, after, k=3)
    np.testing.assert_array_equal(out.rising, [0])
    np.testing.assert_array_equal(out.falling, [2])


def test_pairing_finds_the_known_pair() -> None:
    c = constructed()
    out = find_groups(c["before"], c["after"], c["features"], c["labels"], k=24)
    assert len(out.pairs) == 1
    pair = out.pairs[0]
    assert set(pair.rising.members) == set(c["R"]) and set(pair.falling.members) == set(c["F"])
    assert (pair.rising.majority_label, pair.falling.majority_label) == (0, 1)
    centered = c["features"] - c["features"].mean(0)
    u = centered / np.linalg.norm(centered, axis=1, keepdims=True)
    brute = (u[c["R"]] @ u[c["F"]].T).mean()  # the score: mean cosine of a rising-falling pair
    assert pair.score == pytest.approx(brute, abs=1e-12) and pair.score > 0.8
    assert pair.rising.coherence == pytest.approx(np.linalg.norm(u[c["R"]].mean(0)), abs=1e-12)
    p = np.eye(c["features"].shape[1])[0]
    assert abs(pair.rising.mean_direction @ p) > 0.95
    kinds = sorted((g.kind, len(g.members)) for g in out.groups)
    assert kinds == [("falling", 8)] * 3 + [("rising", 8)] * 2
    summary = json.loads(json.dumps(out.to_dict(np.arange(300) + 1000)))  # monitor -> dataset
    (pair_summary,) = summary["pairs"]
    rising_summary = summary["groups"][pair_summary["rising"]]
    assert sorted(rising_summary["members"]) == sorted(c["R"] + 1000)
    assert rising_summary["label_counts"] == {"0": 8} and rising_summary["kind"] == "rising"
    # features are centered first: a common offset (a ReLU layer's mean) changes nothing
    shifted = find_groups(c["before"], c["after"], c["features"] + 30.0, c["labels"], k=24)
    assert [(set(q.rising.members), set(q.falling.members)) for q in shifted.pairs] == [
        (set(c["R"]), set(c["F"]))
    ]


@pytest.mark.parametrize("case", ["orthogonal", "same-label", "no-features"])
def test_no_pair_is_reported_where_none_exists(case: str) -> None:
    c = constructed(seed=2)
    features, labels = c["features"], c["labels"]
    if case == "orthogonal":  # F moved off p: R and F no longer share a direction
        features[c["F"]] += -12 * np.eye(24)[0] + 12 * np.eye(24)[5]
    elif case == "same-label":
        labels[c["F"]] = 0
    out = find_groups(
        c["before"], c["after"], None if case == "no-features" else features, labels, k=24
    )
    assert out.pairs == ()


def test_find_groups_is_deterministic_and_reports_by_threshold() -> None:
    c = constructed(seed=5)
    args = (c["before"], c["after"], c["features"], c["labels"])
    one, two = find_groups(*args, k=24), find_groups(*args, k=24)
    assert [list(g.members) for g in one.groups] == [list(g.members) for g in two.groups]
    assert [p.score for p in one.pairs] == [p.score for p in two.pairs]
    score = one.pairs[0].score
    assert find_groups(*args, k=24, threshold=score + 1e-9).pairs == ()


# --- oscillation, curvature link, spikes, storage ------------------------------------------------


def test_oscillation_of_antiphase_and_in_phase_series() -> None:
    t = np.arange(41)
    wiggle = 0.3 * (-1.0) ** t
    anti = oscillation(2.0 - 0.01 * t + wiggle, 1.0 - 0.01 * t - wiggle, window=20)
    assert anti.alternation_rising == 1.0 and anti.alternation_falling == 1.0
    assert anti.correlation == pytest.approx(-1.0, abs=1e-9) and anti.window == 20
    trend = oscillation(np.exp(-0.1 * t), 0.5 * np.exp(-0.1 * t), window=20)
    assert trend.alternation_rising == 0.0 and trend.correlation == pytest.approx(1.0)
    # only the last `window` changes count: an in-phase past does not dilute a recent antiphase
    mixed = oscillation(
        np.r_[t[:20] * 0.1, 2 + wiggle[20:]], np.r_[t[:20] * 0.1, 2 - wiggle[20:]], window=20
    )
    assert mixed.correlation == pytest.approx(-1.0, abs=1e-9)
    assert math.isnan(oscillation([1.0, 2.0], [1.0, 1.0]).correlation)


def test_gradient_alignment_against_the_gradient_computed_directly() -> None:
    ((x, y),) = digits(64)
    model = mlp(1)
    loss_fn = nn.CrossEntropyLoss()
    reference = copy.deepcopy(model).eval()
    loss_fn(reference(x), y).backward()
    g = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    v = torch.randn(g.numel(), generator=torch.Generator().manual_seed(0), dtype=g.dtype)
    out = gradient_alignment(model, loss_fn, x, y, v, batch_size=10)
    assert out.cosine == pytest.approx(float(g @ v / (g.norm() * v.norm())), abs=1e-10)
    assert out.grad_norm == pytest.approx(float(g.norm()), rel=1e-10) and out.n_forward == 7
    assert gradient_alignment(model, loss_fn, x, y, g).cosine == pytest.approx(1.0, abs=1e-12)
    assert all(p.grad is None for p in model.parameters())
    block = {"3.weight": torch.ones_like(model[3].weight)}  # a block: the last layer only
    g_block = reference[3].weight.grad.reshape(-1)
    expected = float(g_block.sum() / (g_block.norm() * math.sqrt(g_block.numel())))
    assert gradient_alignment(model, loss_fn, x, y, block).cosine == pytest.approx(expected)
    with pytest.raises(ValueError, match="entries"):
        gradient_alignment(model, loss_fn, x, y, v[:-1])
    with pytest.raises(ValueError, match="shapes"):
        gradient_alignment(model, loss_fn, x, y, {"3.weight": torch.ones(3)})


def noisy_curve(n: int = 600, seed: int = 0) -> np.ndarray:
    """A decaying loss with 10 % multiplicative noise: no spike in it."""
    rng = np.random.default_rng(seed)
    return (0.1 + 2.0 * np.exp(-np.arange(n) / 150)) * np.exp(rng.normal(0, 0.1, n))


def run(detector: SpikeDetector, losses: np.ndarray) -> list[int]:
    return [s.step for t, loss in enumerate(losses) if (s := detector.update(t, loss))]


def test_spike_detector_finds_the_spike_at_its_step_and_ignores_noise() -> None:
    for seed in range(5):
        assert run(SpikeDetector(), noisy_curve(seed=seed)) == []
    curve = noisy_curve()
    curve[300:304] *= 3.0  # one spike lasting four steps, one event
    curve[450] = np.nan  # divergence is a spike too
    assert run(SpikeDetector(), curve) == [300, 450]


@pytest.mark.parametrize(
    "history",
    [
        [1.0, 1.1, 0.9, 1.0, 1.2, 0.8, 1.0, 1.05, 0.95, 1.0],  # (1 + r) * median decides
        [1.0, 1.3, 0.7, 1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.25],  # median + c * MAD decides
    ],
    ids=["relative", "mad"],
)
def test_spike_rule_is_the_stated_one(history: list[float]) -> None:
    med = float(np.median(history))
    mad = 1.4826 * float(np.median(np.abs(np.array(history) - med)))
    threshold = max(med + 6.0 * mad, 1.5 * med)
    for value, expected in [(threshold, None), (threshold * (1 + 1e-9), threshold)]:
        detector = SpikeDetector(window=50, c=6.0, r=0.5, min_history=10)
        run(detector, np.array(history))
        spike = detector.update(10, value)
        assert (spike.threshold if spike else None) == (
            pytest.approx(expected) if expected else None
        )
    assert run(SpikeDetector(min_history=10), np.r_[np.ones(9), 100.0]) == []  # not enough history


def test_losses_bytes_round_trip() -> None:
    losses = np.random.default_rng(0).gamma(1.0, 1.0, 2048).astype(np.float32)
    losses[:3] = [np.inf, 0.0, -1.5]
    data = losses_to_bytes(losses)
    assert len(data) == 4 * 2048 and losses_to_bytes([1.0]) == b"\x00\x00\x80\x3f"
    back = losses_from_bytes(data)
    assert back.dtype == np.float32 and back.flags.writeable
    np.testing.assert_array_equal(back, losses)
    assert example_loss_from_bytes(data, 1234) == float(losses[1234])
    np.testing.assert_array_equal(losses_from_bytes(losses_to_bytes(torch.tensor(losses))), losses)
    with pytest.raises(ValueError):
        losses_from_bytes(data[:-1])
    with pytest.raises(IndexError):
        example_loss_from_bytes(data, 2048)


# --- the planted data set and a training run on it ----------------------------------------------


def test_generator_plants_one_direction_split_between_two_classes() -> None:
    data = make_opposing_signals(4096, 32, 4, 0.03, seed=7)
    again = make_opposing_signals(4096, 32, 4, 0.03, seed=7)
    control = make_opposing_signals(4096, 32, 4, 0.0, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(data, again, strict=True))
    assert data.inputs.shape == (4096, 32) and data.inputs.dtype == torch.float32
    assert int(data.planted.sum()) == round(0.03 * 4096) and not control.planted.any()
    assert torch.bincount(data.labels[data.planted]).tolist() == [62, 61]
    assert torch.bincount(data.labels).tolist() == [1024] * 4
    shift = data.inputs - control.inputs  # the same core data, plus the planted feature
    assert torch.equal(shift[~data.planted], torch.zeros_like(shift[~data.planted]))
    torch.testing.assert_close(shift[data.planted], 48.0 * data.direction.expand(123, 32))
    means = torch.stack([control.inputs[control.labels == c].mean(0) for c in range(4)])
    assert float((means @ data.direction).abs().max()) < 0.1  # orthogonal to the core signal


Run = tuple[OpposingSignals, MonitorSet, np.ndarray]
SEEDS = (0, 1, 2)
STEPS, LR, BATCH, EVERY = 300, 0.5, 256, 5


def train_and_monitor(data: OpposingSignals, seed: int) -> tuple[MonitorSet, np.ndarray]:
    """SGD (lr 0.5, batch 256) on a 32-64-64-4 ReLU MLP; monitor losses at every step 0..STEPS.

    The monitor pass has no side effect on training (no grad, eval mode, no random numbers), so
    every ``EVERY``-th row of the history is what probing every ``EVERY`` steps would record.
    """
    x, y = data.inputs, data.labels
    torch.manual_seed(seed)
    model = mlp_task(x.shape[1], 64, 2, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    batches = torch.Generator().manual_seed(seed)
    monitor = MonitorSet.choose(len(x), 2048, seed)
    history = [monitor.measure(model, CE_NONE, x, y).losses]
    for _ in range(STEPS):
        idx = torch.randint(len(x), (BATCH,), generator=batches)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()
        history.append(monitor.measure(model, CE_NONE, x, y).losses)
    return monitor, np.stack(history)


@pytest.fixture(scope="module")
def runs(one_thread: None) -> dict[tuple[int, bool], Run]:
    """Planted and control runs for each seed; the control has the same core data and batches."""
    out, started = {}, time.perf_counter()
    for seed in SEEDS:
        for planted in (True, False):
            data = make_opposing_signals(4096, 32, 4, 0.03 if planted else 0.0, seed=seed)
            out[seed, planted] = (data, *train_and_monitor(data, seed))
    print(f"6 training runs: {time.perf_counter() - started:.1f} s")
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_losses_oscillate_in_antiphase(runs: dict, seed: int) -> None:
    planted_data, monitor, planted = runs[seed, True]
    _, _, control = runs[seed, False]
    labels = planted_data.labels[monitor.indices].numpy()
    mask = planted_data.planted[monitor.indices].numpy()
    halves = [mask & (labels == 0), mask & (labels == 1)]
    window = 200

    def swing(history: np.ndarray, members: np.ndarray) -> float:
        return float(np.abs(np.diff(history[-window - 1 :, members].mean(1))).mean())

    ratios = [swing(planted, h) / swing(control, h) for h in halves]
    osc = oscillation(*(planted[:, h].mean(1) for h in halves), window=window)
    print(f"seed {seed}: swing ratio {ratios[0]:.0f}, {ratios[1]:.0f}; {osc}")
    assert min(ratios) >= 10  # the same examples without the planted feature barely move
    assert osc.correlation < -0.3  # and the two halves move against each other


@pytest.mark.parametrize("seed", SEEDS)
def test_groups_found_while_training_are_the_planted_examples(runs: dict, seed: int) -> None:
    found = {}
    for planted in (True, False):
        data, monitor, history = runs[seed, planted]
        inputs = data.inputs[monitor.indices].numpy()
        labels = data.labels[monitor.indices].numpy()
        pairs = [
            pair
            for before, after in zip(history[:-1:EVERY], history[EVERY::EVERY], strict=True)
            for pair in find_groups(before, after, inputs, labels, k=32).pairs
        ]
        members = {int(i) for p in pairs for g in (p.rising, p.falling) for i in g.members}
        found[planted] = (pairs, np.array(sorted(members), dtype=int))
    data, monitor, _ = runs[seed, True]
    truth = data.planted[monitor.indices].numpy()
    pairs, flagged = found[True]
    precision = truth[flagged].mean()
    recall = truth[flagged].sum() / truth.sum()
    print(
        f"seed {seed}: {len(pairs)} pairs, {len(flagged)} flagged, precision {precision:.2f}, "
        f"recall {recall:.2f} of {truth.sum()} monitored planted; control pairs "
        f"{len(found[False][0])}"
    )
    assert precision >= 0.8 and recall >= 0.5
    assert found[False][0] == []  # nothing in the control scores above the threshold
