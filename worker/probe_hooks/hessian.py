"""The Hessian probe in the training loop: spectra on a fixed batch, and the edge of stability.

Stored at every probe step s (docs/probes/hessian.md, "In the service"):

- scalars ``hessian.lambda_max``, ``hessian.lambda_min``, ``hessian.eig.{i}`` (the top k,
  descending), ``hessian.threshold`` (the optimizer's stability threshold at the current lr), for
  Adam/AdamW ``hessian.precond_lambda_max``; with ``trace``: ``hessian.trace`` and
  ``hessian.trace_se``; with ``per_layer``: ``hessian.layer.{block}``;
- arrays ``hessian`` at s: ``eigenvalues`` (k largest then k smallest, descending),
  ``residuals``, with ``density``: ``density_grid`` and ``density``; meta with the cost;
- event ``eos.crossed`` once per run, at the first probe step where the sharpness that meets the
  threshold (raw λ_max for SGD, preconditioned for Adam/AdamW) is ≥ the threshold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from server.schemas import HessianProbe
from worker.probe_hooks.common import Batch, ProbeStep, ScheduledHook
from worker.probes.hessian import (
    density,
    layer_spectra,
    preconditioned_sharpness,
    top_eigenvalues,
    trace,
)
from worker.probes.stability import (
    adam_preconditioner,
    crossed_edge_of_stability,
    optimizer_threshold,
)

PROBE = "hessian"
SEED_OFFSET = 7919  # the service's probe batch: seeded by config.seed + this


class HessianHook(ScheduledHook):
    name = PROBE

    def __init__(self, config: HessianProbe, data: list[Batch]) -> None:
        """``data``: the probe batches (on the model's device), the same at every step."""
        super().__init__(config.every)
        self.config = config
        self.data = data
        self.state = {"crossed_at": None}

    def probe(self, ctx: ProbeStep) -> None:
        cfg, model, loss_fn, data = self.config, ctx.model, ctx.loss_fn, self.data
        seed = ctx.seed
        eig = top_eigenvalues(model, loss_fn, data, k=cfg.k, tol=cfg.tol, which="both", seed=seed)
        values = eig.eigenvalues.numpy()
        top = values[: cfg.k]
        scalars: dict[str, float] = {
            "hessian.lambda_max": float(values[0]),
            "hessian.lambda_min": float(values[-1]),
            **{f"hessian.eig.{i}": float(v) for i, v in enumerate(top)},
        }
        n_hvp, seconds = eig.n_hvp, eig.cost.seconds
        threshold, preconditioned = optimizer_threshold(ctx.optimizer)
        scalars["hessian.threshold"] = threshold
        sharpness = float(values[0])
        meta: dict[str, Any] = {"k": cfg.k, "converged": bool(eig.converged)}
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
            "residuals": eig.residuals.numpy(),
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
