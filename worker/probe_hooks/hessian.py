"""The Hessian probe in the training loop: spectra on a fixed batch, and the edge of stability.

Stored at every probe step s (docs/probes/hessian.md, "In the service"):

- scalars ``hessian.lambda_max``, with ``smallest`` ``hessian.lambda_min``, ``hessian.eig.{i}``
  (the top k, descending), ``hessian.threshold`` (the optimizer's stability threshold at the
  current lr), for Adam/AdamW ``hessian.precond_lambda_max``; with ``trace``: ``hessian.trace``
  and ``hessian.trace_se``; with ``per_layer``: ``hessian.layer.{block}``; with
  ``batch_sharpness``: ``hessian.batch_sharpness`` (on that many random minibatches of the run's
  batch size, drawn afresh at each probe step from a step-seeded generator);
- arrays ``hessian`` at s: ``eigenvalues`` (k largest then, with ``smallest``, k smallest,
  descending),
  ``residuals``, with ``density``: ``density_grid`` and ``density``; meta with the cost;
- event ``eos.crossed`` once per run, at the first probe step where the sharpness that meets the
  threshold (raw λ_max for SGD, preconditioned for Adam/AdamW) is ≥ the threshold.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from server.schemas import HessianProbe
from worker.probe_hooks.common import Batch, ProbeStep, ScheduledHook
from worker.probes.batch_sharpness import batch_sharpness
from worker.probes.hessian import (
    SharpnessTracker,
    density,
    layer_spectra,
    preconditioned_sharpness,
    top_eigenvalues,
    trace,
)
from worker.probes.linalg import HessianOperator
from worker.probes.stability import (
    adam_preconditioner,
    crossed_edge_of_stability,
    optimizer_threshold,
)

PROBE = "hessian"
SEED_OFFSET = 7919  # the service's probe batch: seeded by config.seed + this


class HessianHook(ScheduledHook):
    name = PROBE

    def __init__(
        self,
        config: HessianProbe,
        data: list[Batch],
        minibatches: Callable[[int], list[Batch]] | None = None,
    ) -> None:
        """``data``: the probe batches (on the model's device), the same at every step;
        ``minibatches(step)``: the ``config.batch_sharpness`` training minibatches that
        ``hessian.batch_sharpness`` averages over at ``step`` (default: the first probe batches)."""
        super().__init__(config.every)
        self.config = config
        self.data = data
        self.minibatches = minibatches or (lambda _step: data[: config.batch_sharpness])
        self.state = {"crossed_at": None}
        self._trackers: dict[str, SharpnessTracker] = {}

    def tracker(self, which: str, seed: int) -> SharpnessTracker:
        """The warm-start tracker of one end, its vectors restored from the checkpointed state."""
        if which not in self._trackers:
            cfg = self.config
            tracker = SharpnessTracker(
                k=cfg.k, tol=cfg.tol, which=which, cold_every=cfg.cold_every, seed=seed,
                max_iter=max(300, 20 * cfg.k) // 2,  # a warm try and a cold fall-back: the cap
            )  # fmt: skip
            tracker.load_state_dict(self.state.get("trackers", {}).get(which, {}))
            self._trackers[which] = tracker
        return self._trackers[which]

    def extremes(self, ctx: ProbeStep) -> tuple[np.ndarray, np.ndarray, bool, int, float]:
        """Eigenvalues (k largest, then k smallest; descending), residuals, converged, HVPs,
        seconds: warm-started trackers or cold Lanczos, as configured."""
        cfg, model, loss_fn, data = self.config, ctx.model, ctx.loss_fn, self.data
        if not cfg.warm_start:
            which = "both" if cfg.smallest else "largest"
            eig = top_eigenvalues(
                model, loss_fn, data, k=cfg.k, tol=cfg.tol, which=which, seed=ctx.seed
            )
            residuals = eig.residuals.numpy()
            return eig.eigenvalues.numpy(), residuals, eig.converged, eig.n_hvp, eig.cost.seconds
        started = time.perf_counter()
        op = HessianOperator(model, loss_fn, data)
        ends = [self.tracker("largest", ctx.seed).update(op)]
        if cfg.smallest:
            ends.append(self.tracker("smallest", ctx.seed).update(op, scale=ends[0].scale))
        values = np.concatenate([r.eigenvalues[: cfg.k].numpy() for r in ends])
        residuals = np.concatenate([r.residuals[: cfg.k].numpy() for r in ends])
        order = np.argsort(-values, kind="stable")
        self.state["trackers"] = {w: t.state_dict() for w, t in self._trackers.items()}
        converged = all(r.converged for r in ends)
        return values[order], residuals[order], converged, op.n_hvp, time.perf_counter() - started

    def probe(self, ctx: ProbeStep) -> None:
        cfg, model, loss_fn, data = self.config, ctx.model, ctx.loss_fn, self.data
        seed = ctx.seed
        values, residuals, converged, n_hvp, seconds = self.extremes(ctx)
        top = values[: cfg.k]
        scalars: dict[str, float] = {
            "hessian.lambda_max": float(values[0]),
            **{f"hessian.eig.{i}": float(v) for i, v in enumerate(top)},
        }
        if cfg.smallest:
            scalars["hessian.lambda_min"] = float(values[-1])
        if cfg.batch_sharpness:
            bs = batch_sharpness(model, loss_fn, self.minibatches(ctx.step))
            scalars["hessian.batch_sharpness"] = bs.value
            n_hvp, seconds = n_hvp + bs.n_hvp, seconds + bs.seconds
        threshold, preconditioned = optimizer_threshold(ctx.optimizer)
        scalars["hessian.threshold"] = threshold
        sharpness = float(values[0])
        meta: dict[str, Any] = {"k": cfg.k, "converged": bool(converged)}
        if preconditioned:
            sharpness = math.nan  # before the first Adam step there is no preconditioner
            if adam_preconditioner(ctx.optimizer, model):
                pre = preconditioned_sharpness(
                    model, loss_fn, data, ctx.optimizer, k=1, tol=cfg.tol, seed=seed
                )
                sharpness = float(pre.eigenvalues[0])
                scalars["hessian.precond_lambda_max"] = sharpness
                n_hvp, seconds = n_hvp + pre.n_hvp, seconds + pre.cost.seconds
        arrays: dict[str, np.ndarray] = {
            "eigenvalues": values,
            "residuals": residuals,
        }
        if cfg.trace:
            tr = trace(model, loss_fn, data, n_probes=cfg.trace_probes, seed=seed)
            scalars["hessian.trace"] = tr.estimate
            scalars["hessian.trace_se"] = tr.standard_error
            meta["trace_method"] = tr.method
            n_hvp, seconds = n_hvp + tr.n_hvp, seconds + tr.cost.seconds
        if cfg.density:
            dens = density(
                model,
                loss_fn,
                data,
                n_starts=cfg.density_starts,
                steps=cfg.density_steps,
                seed=seed,
            )
            arrays["density_grid"] = dens.grid.numpy()
            arrays["density"] = dens.density.numpy()
            meta["density_sigma"] = dens.sigma
            n_hvp, seconds = n_hvp + dens.n_hvp, seconds + dens.cost.seconds
        if cfg.per_layer:
            blocks = layer_spectra(model, loss_fn, data, k=1, tol=cfg.tol, seed=seed)
            for block, res in blocks.items():
                scalars[f"hessian.layer.{block}"] = float(res.eigenvalues[0])
                n_hvp, seconds = n_hvp + res.n_hvp, seconds + res.cost.seconds
            meta["layers"] = list(blocks)
        meta.update(
            lambda_max=float(values[0]),
            threshold=threshold,
            preconditioned=preconditioned,
            lr=ctx.lr,
            batch_size=sum(len(y) for _, y in data),
            cost={"n_hvp": n_hvp, "seconds": seconds},
        )
        ctx.reporter.metrics(ctx.step, scalars)
        ctx.reporter.arrays(PROBE, ctx.step, arrays, meta)
        if self.state.get("crossed_at") is None and crossed_edge_of_stability(sharpness, threshold):
            self.state["crossed_at"] = ctx.step
            ctx.reporter.event(
                ctx.step,
                "eos.crossed",
                {
                    "step": ctx.step,
                    "sharpness": sharpness,
                    "lambda_max": float(values[0]),
                    "threshold": threshold,
                    "preconditioned": preconditioned,
                    "lr": ctx.lr,
                },
            )
