"""Detection quality of the opposing-signals probe on the planted data set, and its side figures.

For each seed, trains the registry MLP (32-64-64-4, ReLU) with SGD (lr 0.5, batch 256, 300 steps)
on ``make_opposing_signals`` (4,096 examples, 3 % planted) and on its control (same core data and
batches, no planted feature), probing a 2,048-example monitor set every 5 steps, and prints:

* detection with input features and with penultimate features: pairs reported, members
  flagged (union over probe steps), precision and recall against the planted ground truth among
  the monitored examples, and the highest pair score in the control (with no threshold);
* loss spikes (``SpikeDetector`` defaults, on the minibatch train loss) in both runs;
* the link to curvature at the last step: ``|cos|`` between the top Hessian eigenvector of the
  monitor-set loss (``worker.probes.hessian.top_eigenvalues``) and the mean-loss gradient of the
  monitored planted examples, of the non-planted ones, and of random non-planted groups of the
  same size.

Usage: python -m bench.opposing_detection [--seeds 0 1 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from worker.probes.hessian import top_eigenvalues
from worker.probes.opposing import (
    MonitorSet,
    SpikeDetector,
    find_groups,
    gradient_alignment,
)
from worker.training.models import mlp
from worker.training.opposing_data import make_opposing_signals

CE, CE_NONE = nn.CrossEntropyLoss(), nn.CrossEntropyLoss(reduction="none")
STEPS, LR, BATCH, EVERY, K = 300, 0.5, 256, 5, 32


def train(seed: int, planted: bool) -> dict:
    data = make_opposing_signals(4096, 32, 4, 0.03 if planted else 0.0, seed=seed)
    x, y = data.inputs, data.labels
    torch.manual_seed(seed)
    model = mlp(32, 64, 2, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    batches = torch.Generator().manual_seed(seed)
    monitor = MonitorSet.choose(len(x), 2048, seed)
    detector, spikes, passes = SpikeDetector(), [], []
    for step in range(STEPS + 1):
        if step % EVERY == 0:
            passes.append(monitor.measure(model, CE_NONE, x, y, features="penultimate"))
        if step == STEPS:
            break
        idx = torch.randint(len(x), (BATCH,), generator=batches)
        optimizer.zero_grad()
        loss = CE(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        if detector.update(step, loss.item()):
            spikes.append(step)
    return {"data": data, "model": model, "monitor": monitor, "passes": passes, "spikes": spikes}


def detect(run: dict, kind: str, threshold: float = 0.5) -> tuple[int, np.ndarray, float]:
    """Pairs reported, positions flagged, and the best pair score with no threshold."""
    idx = run["monitor"].indices
    labels = run["data"].labels[idx].numpy()
    inputs = run["data"].inputs[idx].numpy()
    n_pairs, flagged, scores = 0, set(), []
    for before, after in zip(run["passes"][:-1], run["passes"][1:], strict=True):
        features = inputs if kind == "input" else after.features
        out = find_groups(before.losses, after.losses, features, labels, k=K, threshold=-1.0)
        scores += [pair.score for pair in out.pairs]
        for pair in out.pairs:
            if pair.score >= threshold:
                n_pairs += 1
                flagged.update(int(i) for g in (pair.rising, pair.falling) for i in g.members)
    return n_pairs, np.array(sorted(flagged), dtype=int), max(scores, default=float("nan"))


def curvature(run: dict, rng: np.random.Generator) -> tuple[float, float, list[float]]:
    model, data, idx = run["model"], run["data"], torch.as_tensor(run["monitor"].indices)
    x, y = data.inputs[idx], data.labels[idx]
    top = top_eigenvalues(model, CE, [(x, y)], k=1, tol=1e-4)
    v = top.eigenvector(0)
    planted = data.planted[idx]
    clean = torch.nonzero(~planted).flatten().numpy()

    def cos(rows: np.ndarray | torch.Tensor) -> float:
        return abs(gradient_alignment(model, CE, x[rows], y[rows], v).cosine)

    randoms = [cos(rng.choice(clean, int(planted.sum()), replace=False)) for _ in range(5)]
    print(
        f"    top Hessian eigenvalue {float(top.eigenvalues[0]):.1f} "
        f"(2/lr = {2 / LR:.1f}), {top.n_hvp} HVPs"
    )
    return cos(torch.nonzero(planted).flatten()), cos(clean), randoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s); k={K}, "
        f"every {EVERY} steps, pair threshold 0.5"
    )
    for seed in args.seeds:
        started = time.perf_counter()
        runs = {planted: train(seed, planted) for planted in (True, False)}
        truth = runs[True]["data"].planted[runs[True]["monitor"].indices].numpy()
        print(
            f"seed {seed} ({truth.sum()} planted among the monitored; "
            f"training both runs {time.perf_counter() - started:.1f} s):"
        )
        for kind in ("input", "penultimate"):
            n_pairs, flagged, _ = detect(runs[True], kind)
            control_pairs, _, control_best = detect(runs[False], kind)
            precision = truth[flagged].mean() if len(flagged) else float("nan")
            recall = truth[flagged].sum() / truth.sum()
            print(
                f"  {kind:>11} features: {n_pairs:3d} pairs, {len(flagged):3d} flagged, "
                f"precision {precision:.2f}, recall {recall:.2f}; control: {control_pairs} "
                f"pairs, best score {control_best:.2f}"
            )
        print(f"  spikes (steps): planted {runs[True]['spikes']}, control {runs[False]['spikes']}")
        planted_cos, clean_cos, randoms = curvature(runs[True], np.random.default_rng(seed))
        print(
            f"    |cos(gradient, top eigenvector)|: planted {planted_cos:.2f}, non-planted "
            f"{clean_cos:.2f}, random non-planted groups of the same size "
            f"{min(randoms):.2f}-{max(randoms):.2f}"
        )


if __name__ == "__main__":
    main()
