"""The loss-landscape probe in the training loop: a surface through θ_s at every probe step.

Stored at every probe step s (docs/probes/landscape.md, "In the service"):

- scalars ``landscape.center_loss`` (the loss of θ_s on the evaluation subset: the grid's centre),
  ``landscape.curvature`` (the largest central second difference of the loss at the centre over
  the axes, in the axes' units: along a unit Hessian eigenvector it approximates the eigenvalue)
  and, for ``pca``, ``landscape.pca_explained`` (the fraction of the trajectory's variance in the
  plane);
- arrays ``landscape`` at s: ``coords`` (the offsets on each axis; α for ``interpolation``),
  ``loss`` and ``accuracy`` (``(n,)`` or ``(n, n)``, ``[i, j]`` at ``coords[i]`` along the first
  direction and ``coords[j]`` along the second), for ``pca`` ``trajectory`` (``(T, dims)``, the
  snapshots' coordinates), ``trajectory_steps`` and ``explained_variance``, with ``refine``
  ``evaluated`` (``(P, 2)``, the offsets of the points evaluated; ``loss`` and ``accuracy``
  elsewhere are interpolated) and ``evaluated_loss``; meta with
  ``Surface.metadata`` (kinds, rules, BatchNorm mode, seed, cost in seconds and forward passes),
  the config's kind, dims, range, the evaluation subset's size and seed, and the scalars;
- arrays ``landscape.directions`` at s, when the model has at most ``STORE_MAX_PARAMETERS``
  parameters: ``center`` (θ_s) and ``direction_0`` [, ``direction_1``], flattened in
  ``named_parameters()`` order (meta: names and shapes), from which the surface is recomputed
  exactly with ``surface(model, loss_fn, data, [direction dicts], coords)``;
- event ``landscape.snapshot`` at s (kind, dims, centre loss), so the run's timeline shows where
  a surface is stored.

``pca`` needs the trajectory: the hook keeps flattened float32 snapshots of the weights every
``snapshot_every`` steps from ``since`` on, in its checkpointed state (so a resumed run draws the
same path). At most ``max_snapshots`` are kept, and at most ``TRAJECTORY_BYTES`` of them: when
full, every second snapshot is dropped and the interval doubles, so the path stays evenly sampled
from its start. Steps with fewer than three snapshots store nothing. ``interpolation`` keeps θ₀ in
the state. The probe evaluates through ``torch.func.functional_call``: weights, buffers, ``.grad``
and train/eval flags are left as found.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from server.schemas import LandscapeProbe
from worker.probe_hooks.common import Batch, ProbeStep, ScheduledHook
from worker.probes.directions import trajectory_pca
from worker.probes.landscape import Surface, interpolate, surface

log = logging.getLogger(__name__)

PROBE = "landscape"
DIRECTIONS = "landscape.directions"
SEED_OFFSET = 4099  # the service's evaluation subset: seeded by config.seed + this
EVAL_BATCH = 1024  # examples per forward pass
HESSIAN_TOL = 1e-3  # Lanczos residual tolerance of the Hessian directions (as HessianProbe's)
STORE_MAX_PARAMETERS = 250_000  # θ_s and the directions are stored up to this model size
TRAJECTORY_BYTES = 256 * 2**20  # memory of the kept snapshots


def flat_parameters(model: torch.nn.Module) -> torch.Tensor:
    """The parameters as one float32 CPU vector in ``named_parameters()`` order (a copy)."""
    return torch.cat([p.detach().reshape(-1).float().cpu() for p in model.parameters()])


def curvature(coords: np.ndarray, loss: np.ndarray) -> float:
    """Largest central second difference of ``loss`` at the grid's centre, over its axes."""
    m = len(coords) // 2
    h = float(coords[m + 1] - coords[m])
    centre = (m,) * loss.ndim
    values = []
    for axis in range(loss.ndim):
        up, down = list(centre), list(centre)
        up[axis], down[axis] = m + 1, m - 1
        values.append((loss[tuple(up)] - 2 * loss[centre] + loss[tuple(down)]) / h**2)
    return float(max(values))


class LandscapeHook(ScheduledHook):
    name = PROBE

    def __init__(
        self, config: LandscapeProbe, data: list[Batch], data_meta: dict | None = None
    ) -> None:
        """``data``: the evaluation batches (on the model's device), the same at every step;
        ``data_meta``: how they were chosen, added to each result's meta."""
        super().__init__(config.every)
        self.config = config
        self.data = data
        self.data_meta = data_meta or {}
        self.state = {"snapshots": [], "snapshot_steps": [], "stride": 1, "theta0": None}

    def __call__(self, ctx: ProbeStep) -> None:
        cfg = self.config
        if cfg.kind == "interpolation" and self.state.get("theta0") is None:
            self.state["theta0"] = flat_parameters(ctx.model)
        if cfg.kind == "pca":
            self._snapshot(ctx)
        super().__call__(ctx)

    def _snapshot(self, ctx: ProbeStep) -> None:
        cfg, state = self.config, self.state
        interval = (cfg.snapshot_every or cfg.every) * state["stride"]
        if ctx.step < cfg.since or (ctx.step - cfg.since) % interval:
            return
        state["snapshots"].append(flat_parameters(ctx.model))
        state["snapshot_steps"].append(ctx.step)
        n_params = state["snapshots"][-1].numel()
        capacity = max(3, min(cfg.max_snapshots, TRAJECTORY_BYTES // (4 * n_params)))
        if len(state["snapshots"]) > capacity:
            state["snapshots"] = state["snapshots"][::2]
            state["snapshot_steps"] = state["snapshot_steps"][::2]
            state["stride"] *= 2

    def _as_dict(self, flat: torch.Tensor, ctx: ProbeStep) -> dict[str, torch.Tensor]:
        out, start = {}, 0
        for name, p in ctx.model.named_parameters():
            out[name] = flat[start : start + p.numel()].view(p.shape).to(p.device, p.dtype)
            start += p.numel()
        return out

    def _trajectory(self, ctx: ProbeStep) -> tuple[list[torch.Tensor], list[int]]:
        """The kept snapshots, ending with θ_s (appended when it is not the last snapshot)."""
        snapshots, steps = list(self.state["snapshots"]), list(self.state["snapshot_steps"])
        if not steps or steps[-1] != ctx.step:
            snapshots.append(flat_parameters(ctx.model))
            steps.append(ctx.step)
        return snapshots, steps

    def _surface(self, ctx: ProbeStep) -> Surface | None:
        cfg, model, loss_fn, data = self.config, ctx.model, ctx.loss_fn, self.data
        offsets = np.linspace(-cfg.range, cfg.range, cfg.resolution)
        if cfg.kind == "interpolation":
            start = self._as_dict(self.state["theta0"], ctx)
            return interpolate(model, loss_fn, data, start, alphas=1 + offsets, bn_stats=cfg.bn)
        options: dict[str, Any] = {}
        if cfg.kind == "pca":
            snapshots, steps = self._trajectory(ctx)
            if len(snapshots) < cfg.dims + 1:
                log.info("landscape probe at step %d: too few snapshots for PCA", ctx.step)
                return None
            try:
                pca = trajectory_pca(
                    model, [s.to(ctx.device) for s in snapshots], k=cfg.dims, steps=steps
                )
            except ValueError as error:  # e.g. a trajectory that spans fewer than dims directions
                log.warning("landscape probe at step %d: %s", ctx.step, error)
                return None
            extent = float(np.abs(pca.coordinates).max())
            offsets = offsets * extent
            options["trajectory"] = pca
        if cfg.kind == "hessian":
            options["hessian_options"] = {"tol": HESSIAN_TOL, "seed": ctx.seed}
        return surface(
            model,
            loss_fn,
            data,
            directions=(cfg.kind,) * cfg.dims,
            coords=offsets,
            seed=ctx.seed,
            normalization=cfg.normalization,
            bias_bn=cfg.bias_bn,
            bn_stats=cfg.bn,
            refine=None if cfg.refine is None else (cfg.refine.coarse, cfg.refine.budget),
            **options,
        )

    def probe(self, ctx: ProbeStep) -> None:
        cfg = self.config
        try:
            finite = all(bool(torch.isfinite(p).all()) for p in ctx.model.parameters())
            result = self._surface(ctx) if finite else None
        except torch.linalg.LinAlgError:  # PCA or Lanczos on a diverging run
            finite, result = False, None
        if not finite:
            log.warning("landscape probe at step %d: the run diverged, center loss NaN", ctx.step)
            ctx.reporter.metrics(ctx.step, {"landscape.center_loss": math.nan})
            return
        if result is None:
            return
        centre = (cfg.resolution // 2,) * cfg.dims
        scalars = {
            "landscape.center_loss": float(result.loss[centre]),
            "landscape.curvature": curvature(result.coords, result.loss),
        }
        arrays: dict[str, np.ndarray] = {
            "coords": result.coords,
            "loss": result.loss.astype(np.float32),
        }
        if result.accuracy is not None:
            arrays["accuracy"] = result.accuracy.astype(np.float32)
        if result.evaluated is not None:
            arrays["evaluated"] = result.evaluated.astype(np.float32)
            arrays["evaluated_loss"] = result.evaluated_loss.astype(np.float32)
        if result.explained_variance is not None:
            scalars["landscape.pca_explained"] = float(result.explained_variance.sum())
            arrays["trajectory"] = result.trajectory.astype(np.float32)
            arrays["trajectory_steps"] = np.asarray(result.trajectory_steps, dtype=np.int64)
            arrays["explained_variance"] = result.explained_variance
        meta = result.metadata | {
            "kind": cfg.kind,
            "dims": cfg.dims,
            "range": cfg.range,
            "eval_size": sum(len(y) for _, y in self.data),
            **self.data_meta,
            "scalars": {k: v if math.isfinite(v) else None for k, v in scalars.items()},
        }
        n_params = sum(p.numel() for p in ctx.model.parameters())
        meta["directions_stored"] = n_params <= STORE_MAX_PARAMETERS
        ctx.reporter.metrics(ctx.step, scalars)
        ctx.reporter.arrays(PROBE, ctx.step, arrays, meta)
        ctx.reporter.event(
            ctx.step,
            "landscape.snapshot",
            {
                "kind": cfg.kind,
                "dims": cfg.dims,
                "center_loss": meta["scalars"]["landscape.center_loss"],
            },
        )
        if meta["directions_stored"]:
            stored = {"center": flat_parameters(ctx.model).numpy()}
            for i, direction in enumerate(result.directions):
                stored[f"direction_{i}"] = torch.cat(
                    [direction[n].reshape(-1).float() for n, _ in ctx.model.named_parameters()]
                ).numpy()
            shapes = {n: list(p.shape) for n, p in ctx.model.named_parameters()}
            ctx.reporter.arrays(DIRECTIONS, ctx.step, stored, {"shapes": shapes})
