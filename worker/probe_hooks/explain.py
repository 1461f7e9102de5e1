"""The "explain this step" card of a loss spike, computed by the opposing hook when it fires.

A spike at step t is read at the next probe step p (``OpposingHook`` collects the train losses
on the device); the card is computed there, right after the groups of the probe interval
``(prev, p]`` that holds θ_t are found, and stored as arrays ``opposing.explain`` at step t
(docs/timeline.md):

- meta: the spike (loss, running median, threshold, size = loss / median), the sharpness against
  the optimizer's stability threshold (2/η for SGD, Adam's on the preconditioned sharpness) at
  θ_prev ("before", when the hook still holds θ_prev) and at θ_p ("at"), on the monitor set; the
  groups it names (those of the ``MAX_PAIRS`` best pairs, or without a pair the largest rising
  and falling group) with their members (training-set indices), share of the monitor set's
  ``sum |Δloss|`` and mean change, and the alignment ``|cos|`` of their mean-loss gradient with
  the top Hessian eigenvector at θ_p next to random groups of the same size (mean, max);
- arrays ``alignment`` (one per named group) and ``random_alignment`` (groups × ``N_RANDOM``).

Rosenfeld & Risteski (2023) is the reason for each part: a spike while the sharpness sits at the
threshold, caused by a few opposing groups whose gradients point along the sharpest direction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from server.explain_schemas import EXPLAIN
from worker.probe_hooks.common import Batch, ProbeStep, json_safe
from worker.probes.explain import group_alignments
from worker.probes.hessian import EigenResult, preconditioned_sharpness, top_eigenvalues
from worker.probes.opposing import Group, OpposingGroups
from worker.probes.stability import (
    adam_preconditioner,
    edge_of_stability_threshold,
    optimizer_threshold,
)

N_RANDOM = 8  # random groups of the same size per named group
MAX_PAIRS = 2  # pairs whose groups a card names
TOL = 1e-4  # Lanczos tolerance: the card needs λ_max to a few digits, not 1e-6


def card_groups(found: OpposingGroups) -> list[tuple[Group, int | None]]:
    """The groups a card names, with the pair each belongs to: those of the ``MAX_PAIRS`` best
    pairs, or, without a pair, the largest rising and the largest falling group (unpaired)."""
    if found.pairs:
        best = found.pairs[:MAX_PAIRS]
        return [(g, i) for i, pair in enumerate(best) for g in (pair.rising, pair.falling)]
    largest = [next((g for g in found.groups if g.kind == k), None) for k in ("rising", "falling")]
    return [(g, None) for g in largest if g is not None]


@contextmanager
def parameters_at(model: torch.nn.Module, values: Sequence[torch.Tensor] | None):
    """The model with its parameters set to ``values`` inside the block, restored after (the
    same parameter objects, so an optimizer's state still finds them)."""
    if values is None:
        yield
        return
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p, v in zip(params, values, strict=True):
                p.copy_(v)
        yield
    finally:
        with torch.no_grad():
            for p, v in zip(params, saved, strict=True):
                p.copy_(v)


def sharpness(ctx: ProbeStep, data: list[Batch]) -> tuple[float, EigenResult, int]:
    """The sharpness the threshold applies to (raw λ_max, or λ_max(P⁻¹H) for Adam once it has a
    preconditioner; NaN before), the raw top eigenpair, and the HVPs spent."""
    eig = top_eigenvalues(ctx.model, ctx.loss_fn, data, k=1, tol=TOL, seed=ctx.seed)
    value, n_hvp = float(eig.eigenvalues[0]), eig.n_hvp
    if ctx.optimizer is not None and optimizer_threshold(ctx.optimizer)[1]:
        value = float("nan")
        if adam_preconditioner(ctx.optimizer, ctx.model):
            pre = preconditioned_sharpness(
                ctx.model, ctx.loss_fn, data, ctx.optimizer, k=1, tol=TOL, seed=ctx.seed
            )
            value, n_hvp = float(pre.eigenvalues[0]), n_hvp + pre.n_hvp
    return value, eig, n_hvp


def spike_size(loss: float, median: float) -> float:
    """How many times the running median the spike's loss is (NaN without a positive median)."""
    return loss / median if median > 0 else float("nan")


def threshold_of(ctx: ProbeStep) -> tuple[float, bool]:
    """The optimizer's stability threshold (plain gradient descent's 2/η without one)."""
    if ctx.optimizer is None:
        return edge_of_stability_threshold(ctx.lr), False
    return optimizer_threshold(ctx.optimizer)


def explain_spikes(
    ctx: ProbeStep,
    monitor: Any,
    found: OpposingGroups,
    spikes: list[dict[str, float]],
    *,
    prev_step: int,
    previous: Sequence[torch.Tensor] | None,
) -> None:
    """Report one card per spike in ``spikes`` (found between ``prev_step`` and ``ctx.step``).

    ``monitor``: the hook's ``Monitor`` (``x``, ``y``, ``indices``, ``arrays``); ``found``: the
    groups of this probe step; ``previous``: the parameters at ``prev_step``, or None.
    """
    started = time.perf_counter()
    data = [(monitor.x, monitor.y)]
    threshold, preconditioned = threshold_of(ctx)
    before = None
    n_hvp = 0
    if previous is not None:
        with parameters_at(ctx.model, previous):
            value, _, spent = sharpness(ctx, data)
        before, n_hvp = {"step": prev_step, "sharpness": value}, spent
    value, eig, spent = sharpness(ctx, data)
    at = {"step": ctx.step, "sharpness": value, "lambda_max": float(eig.eigenvalues[0])}
    n_hvp += spent
    chosen = card_groups(found)
    alignments = group_alignments(
        ctx.model,
        ctx.loss_fn,
        monitor.x,
        monitor.y,
        eig.eigenvector(0),
        [g.members for g, _ in chosen],
        n_random=N_RANDOM,
        seed=ctx.seed + ctx.step,
    )
    planted = monitor.arrays.get("planted")
    position = {id(g): i for i, g in enumerate(found.groups)}
    groups = []
    for (group, pair), result in zip(chosen, alignments, strict=True):
        entry = {
            "id": position[id(group)],
            "kind": group.kind,
            "pair": pair,
            "size": len(group.members),
            "members": monitor.indices[group.members].tolist(),
            "majority_label": group.majority_label,
            "share": group.share,
            "mean_change": group.mean_change,
            "alignment": result.alignment,
            "random_alignment": {
                "mean": float(np.mean(result.random)),
                "max": float(np.max(result.random)),
                "n": len(result.random),
            },
        }
        if planted is not None:
            entry["planted"] = int(planted[group.members].sum())
        groups.append(entry)
    arrays = {
        "alignment": np.array([r.alignment for r in alignments], dtype=np.float32),
        "random_alignment": np.array([r.random for r in alignments], dtype=np.float32).reshape(
            len(alignments), N_RANDOM
        ),
    }
    cost = {
        "n_hvp": n_hvp,
        "n_forward": sum(r.n_forward for r in alignments),
        "seconds": time.perf_counter() - started,
    }
    for spike in spikes:
        meta = {
            "step": spike["step"],
            "probe_step": ctx.step,
            "prev_step": prev_step,
            "spike": {**spike, "size": spike_size(spike["loss"], spike["median"])},
            "sharpness": {
                "threshold": threshold,
                "preconditioned": preconditioned,
                "lr": ctx.lr,
                "before": before,
                "at": at,
            },
            "paired": bool(found.pairs),
            "total_change": found.total_change,
            "share": float(sum(g["share"] for g in groups)),
            "groups": groups,
            "cost": cost,
        }
        ctx.reporter.arrays(EXPLAIN, int(spike["step"]), arrays, json_safe(meta))
