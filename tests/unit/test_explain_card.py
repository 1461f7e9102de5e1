"""The "explain this step" card on the planted opposing-signals run, with forced loss spikes.

The spikes are forced (a hook replaces the train loss the opposing hook sees at chosen steps), so
where they are does not depend on the CPU's float kernels; what the card says about them is
checked against the planted ground truth and against the quantities recomputed from θ itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from server.schemas import RunConfig
from tests.recording import ForceSpikes, Recorder, Snapshot
from worker.probe_hooks import build_hooks
from worker.probe_hooks.explain import EXPLAIN, N_RANDOM
from worker.probe_hooks.opposing import MONITOR
from worker.probes.explain import group_alignments
from worker.probes.hessian import top_eigenvalues
from worker.probes.opposing import gradient_alignment
from worker.training.loop import train
from worker.training.tasks import build_task

EVERY = 5
SPIKES = list(range(62, 120, 10))  # after the planted groups have started to swing
SPIKE_LOSS = 50.0
CE = nn.CrossEntropyLoss()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CONFIG = RunConfig.model_validate(
    {
        "task": {"kind": "opposing_signals", "n_train": 2048, "n_test": 128},
        "optimizer": {"name": "sgd", "lr": 0.5},
        "batch_size": 256,
        "steps": 120,
        "log_every": 10,
        "seed": 0,
        "device": "cpu",
        "probes": {"opposing": {"every": EVERY, "monitor_size": 1024}},
    }
)


@pytest.fixture(scope="module")
def run(one_thread: None) -> tuple[Recorder, Snapshot]:
    reporter, snapshot = Recorder(), Snapshot(EVERY)
    train(CONFIG, reporter, hooks=[ForceSpikes(SPIKES, SPIKE_LOSS), *build_hooks(CONFIG), snapshot])
    return reporter, snapshot


def cards(reporter: Recorder) -> dict[int, tuple[dict, dict]]:
    return {step: result for (probe, step), result in reporter.results.items() if probe == EXPLAIN}


def test_every_spike_gets_a_card_at_its_step_from_the_next_probe_step(run: tuple) -> None:
    reporter, _ = run
    found = cards(reporter)
    assert sorted(found) == SPIKES
    monitor = set(reporter.results[MONITOR, 0][0]["indices"].tolist())
    for step, (arrays, meta) in found.items():
        assert (meta["prev_step"], meta["probe_step"]) == (
            step // EVERY * EVERY,
            (step // EVERY + 1) * EVERY,
        )
        spike = meta["spike"]
        assert spike["loss"] == SPIKE_LOSS and spike["size"] == pytest.approx(
            SPIKE_LOSS / spike["median"]
        )
        assert meta["sharpness"]["threshold"] == pytest.approx(2 / 0.5)  # SGD: 2/η
        assert not meta["sharpness"]["preconditioned"]
        groups = meta["groups"]
        assert arrays["alignment"].shape == (len(groups),)
        assert arrays["random_alignment"].shape == (len(groups), N_RANDOM)
        for group, own, randoms in zip(
            groups, arrays["alignment"], arrays["random_alignment"], strict=True
        ):
            assert set(group["members"]) <= monitor and len(group["members"]) == group["size"]
            assert group["alignment"] == pytest.approx(float(own), abs=1e-6)
            assert group["random_alignment"]["mean"] == pytest.approx(randoms.mean(), abs=1e-6)
            assert group["random_alignment"]["max"] == pytest.approx(randoms.max(), abs=1e-6)
        assert meta["share"] == pytest.approx(sum(g["share"] for g in groups))


def test_the_card_names_the_planted_groups_and_their_alignment_beats_random_groups(
    run: tuple,
) -> None:
    reporter, _ = run
    planted = build_task(CONFIG.task, CONFIG.seed).planted.numpy()
    paired = [meta for _, meta in cards(reporter).values() if meta["paired"]]
    assert len(paired) >= len(SPIKES) // 2  # the planted examples pair up at most probe steps
    named = np.array([m for meta in paired for g in meta["groups"] for m in g["members"]])
    precision = planted[named].mean()
    own = np.array([g["alignment"] for meta in paired for g in meta["groups"]])
    random = np.array([g["random_alignment"]["mean"] for meta in paired for g in meta["groups"]])
    print(
        f"{len(paired)} paired cards, precision {precision:.2f}; |cos| named groups "
        f"{own.mean():.2f}, random groups of the same size {random.mean():.2f}"
    )
    assert precision >= 0.8
    assert own.mean() > random.mean() + 0.3
    assert np.mean(own > random) >= 0.75  # group by group, not only on average


def test_the_card_agrees_with_the_quantities_recomputed_from_theta(run: tuple) -> None:
    """Sharpness before/at and each group's alignment, recomputed from the snapshots of θ."""
    reporter, snapshot = run
    monitor = reporter.results[MONITOR, 0][0]["indices"]
    task = build_task(CONFIG.task, CONFIG.seed)
    x, y = task.train_x[monitor], task.train_y[monitor]
    position = {int(index): i for i, index in enumerate(monitor)}
    step, (_, meta) = next(iter(sorted(cards(reporter).items())))
    sharp = meta["sharpness"]
    for which in ("before", "at"):
        model = snapshot.taken[sharp[which]["step"]][0]
        eig = top_eigenvalues(model, CE, [(x, y)], k=1, tol=1e-4, seed=CONFIG.seed)
        assert sharp[which]["sharpness"] == pytest.approx(float(eig.eigenvalues[0]), rel=1e-3)
    vector = eig.eigenvector(0)  # θ at the probe step after the spike
    for group in meta["groups"]:
        rows = torch.tensor([position[m] for m in group["members"]])
        cosine = gradient_alignment(model, CE, x[rows], y[rows], vector).cosine
        assert group["alignment"] == pytest.approx(abs(cosine), abs=0.02), step


def test_group_alignment_has_its_closed_form_and_seeded_random_groups() -> None:
    """``group_alignments`` on a linear model, where every quantity has a closed form."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False)
    x, y = torch.randn(40, 3), torch.randn(40, 1)
    mse = nn.MSELoss()
    vector = torch.tensor([1.0, 0.0, 0.0])
    group = np.arange(5)
    [result] = group_alignments(model, mse, x, y, vector, [group], n_random=6, seed=3)
    [again] = group_alignments(model, mse, x, y, vector, [group], n_random=6, seed=3)
    np.testing.assert_array_equal(result.random, again.random)
    with torch.no_grad():  # ∇ of the mean squared error of w·x: 2 mean((w·x - y) x)
        g = 2 * ((model(x[:5]) - y[:5]) * x[:5]).mean(0)
    assert result.alignment == pytest.approx(abs(float(g[0] / g.norm())), rel=1e-6)
    assert result.random.shape == (6,) and np.all((result.random >= 0) & (result.random <= 1))
    assert result.n_forward == 7
    [most] = group_alignments(model, mse, x, y, vector, [np.arange(30)], n_random=2)
    assert most.random.shape == (2,)  # fewer than 30 outside it: drawn from all 40
    with pytest.raises(ValueError, match="an empty group"):
        group_alignments(model, mse, x, y, vector, [np.arange(0)])
