"""Adaptive refinement against the full 51 x 51 grid: points, time and contour error, one run.

For each case the full grid and refined surfaces (``surface(..., refine=(coarse, budget))``)
are timed round-robin in one process (medians of process CPU time, one thread), and the refined
surfaces' contour error against the full grid (``worker.probes.refine.contour_error``: mean and
Hausdorff distance of the contour lines at 15 levels, in grid spacings, on the linear and the
log10 scale) is printed beside the fraction of points evaluated. Cases: the digits CNN with 8
and 16 channels (the registry's split, 60 full-batch Adam steps, the first ``--eval`` images of
the evaluation subset) and an analytic bowl with a sharp curved valley, where the full grid's
own error against the truth (sampled 8x finer) is printed too.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.landscape_refine
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from bench.models import digits, train_digits_cnn
from worker.probes.landscape import surface
from worker.probes.refine import contour_error, contour_levels, refine_grid

N = 51
COORDS = np.linspace(-1.0, 1.0, N)
SETTINGS = ((13, 0.3), (13, 0.4), (9, 0.3))
SCALES: tuple[Callable[[np.ndarray], np.ndarray], ...] = (np.asarray, np.log10)  # linear, log10


def valley(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The test's analytic surface: a bowl crossed by a curved valley 0.06 wide."""
    bowl = 0.05 + 0.2 * (x**2 + y**2)
    return bowl + 3 * (1 - np.exp(-(((y - 0.6 * np.sin(2.5 * x)) / 0.06) ** 2)))


def errors(reference: np.ndarray, approx: np.ndarray, **coords: np.ndarray) -> str:
    """``mean / Hausdorff`` contour error on each scale, in the reference grid's spacings."""
    parts = []
    for scale in SCALES:
        e = contour_error(
            scale(reference), scale(approx), contour_levels(scale(reference)), **coords
        )
        parts.append(f"{e.mean:.3f} / {e.hausdorff:.2f}")
    return " | ".join(parts)


def model_case(channels: int, n_eval: int, repeats: int) -> None:
    train_x, train_y, eval_x, eval_y = digits()
    model = train_digits_cnn(train_x, train_y, channels)
    data = [(eval_x[:n_eval], eval_y[:n_eval])]
    ce = nn.functional.cross_entropy
    runs: dict[str, Callable[[], object]] = {
        "full 51 x 51": lambda: surface(model, ce, data, coords=COORDS, seed=1)
    }
    for coarse, budget in SETTINGS:
        runs[f"refined {coarse}, {budget}"] = lambda c=coarse, b=budget: surface(
            model, ce, data, coords=COORDS, seed=1, refine=(c, b)
        )
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    results = {}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.process_time()
            results[name] = run()
            seconds[name].append(time.process_time() - start)
    full = results["full 51 x 51"]
    base = statistics.median(seconds["full 51 x 51"])
    print(
        f"\n## DigitsCNN({channels}), {n_eval} images, loss {full.loss.min():.3g} .. "
        f"{full.loss.max():.3g}\n"
    )
    print(
        "| surface | points | fraction | CPU s | time vs full | contour error vs full, "
        "linear (mean / Hausdorff) | log10 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, s in results.items():
        t = statistics.median(seconds[name])
        error = "0 / 0 | 0 / 0" if s is full else errors(full.loss, s.loss)
        print(
            f"| {name} | {s.n_points} | {s.n_points / N**2:.3f} | {t:.2f} | {t / base:.2f}x "
            f"| {error} |"
        )


def analytic_case() -> None:
    full = valley(*np.meshgrid(COORDS, COORDS, indexing="ij"))
    fine = np.linspace(-1.0, 1.0, 8 * (N - 1) + 1)
    truth = valley(*np.meshgrid(fine, fine, indexing="ij"))
    against_truth = {"reference_coords": fine, "approx_coords": COORDS}

    def in_coarse_units(text: str) -> str:  # the truth's spacing is 1/8 of the grid's
        return " | ".join(
            " / ".join(f"{float(v) / 8:.3f}" for v in part.split(" / "))
            for part in text.split(" | ")
        )

    print("\n## Analytic sharp valley (tests/probes/test_refine.py), vs the truth 8x finer\n")
    print(
        "| surface | points | fraction | contour error vs truth, linear (mean / Hausdorff) | "
        "log10 | vs full grid, linear | log10 |"
    )
    print("|---|---|---|---|---|---|---|")
    full_error = in_coarse_units(errors(truth, full, **against_truth))
    print(f"| full 51 x 51 | {N * N} | 1.000 | {full_error} | 0 / 0 | 0 / 0 |")
    for coarse, budget in SETTINGS:
        r = refine_grid(lambda i: valley(COORDS[i[:, 0]], COORDS[i[:, 1]]), N, coarse, budget)
        vs_truth = in_coarse_units(errors(truth, r.surface, **against_truth))
        print(
            f"| refined {coarse}, {budget} | {len(r.values)} | {len(r.values) / N**2:.3f} | "
            f"{vs_truth} | {errors(full, r.surface)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=int, default=512, help="evaluation images")
    parser.add_argument("--repeats", type=int, default=3, help="round-robin runs (medians)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; contour errors in grid spacings (51-point grid)")
    analytic_case()
    for channels in (8, 16):
        model_case(channels, args.eval, args.repeats)


if __name__ == "__main__":
    main()
