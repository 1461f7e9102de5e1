"""The opposing-signals probe in the training loop: per-example losses, groups, loss spikes.

Stored (docs/probes/opposing.md, "In the service"):

- arrays ``opposing.monitor`` at step 0, once: ``indices`` (the monitor set, as training-set
  indices), ``labels``, for a task with a ground truth ``planted`` (one flag per monitored
  example), for image tasks ``images`` (uint8 thumbnails); meta with the probe's settings;
- arrays ``opposing`` at every probe step s: ``losses``, one float32 per monitored example (one
  batched no-grad pass in eval mode); meta with the groups and pairs found between the previous
  probe step and s (``OpposingGroups.to_dict``, training-set indices), each pair's oscillation
  over the last ``window`` probe steps and, where the Hessian probe also runs at s, each paired
  group's gradient alignment with the top Hessian eigenvector of the monitor-set loss;
- scalars ``opposing.monitor_loss``, ``opposing.pairs``, ``opposing.score`` (best pair score,
  NaN without a pair), ``opposing.alignment`` (largest |cosine|, when computed);
- events ``loss.spike`` (``SpikeDetector`` on every step's train loss) and, at the same step,
  ``opposing.groups`` naming the groups of the last ``SPIKE_CONTEXT`` probe steps before it
  (by probe step and group id, with label, size and share; the members are in the arrays);
- arrays ``opposing.explain`` at each spike's step: the "explain this step" card, computed at the
  probe step after the spike (``worker.probe_hooks.explain``).

The train losses are collected on the device and read once per probe step (no host sync per
step); spikes are therefore reported at the next probe step, at their own step.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from server.schemas import HessianProbe, OpposingProbe
from server.store.outliers import MONITOR, PROBE
from worker.probe_hooks.common import LossFn, ProbeStep, Reporter, ScheduledHook, json_safe
from worker.probe_hooks.explain import explain_spikes
from worker.probes.hessian import top_eigenvalues
from worker.probes.opposing import (
    OpposingGroups,
    SpikeDetector,
    find_groups,
    gradient_alignment,
    oscillation,
    per_example_losses,
)

log = logging.getLogger(__name__)
SPIKE_CONTEXT = 2  # probe steps whose groups an opposing.groups event names
BATCH = 1024  # examples per forward pass of the monitor pass
MAX_PENDING = 4096  # train losses kept on the device before they are read anyway


def thumbnails(images: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """``(n, h, w)`` uint8 images, scaled so that the set's range spans 0..255."""
    x = images.reshape(len(images), *shape).float()
    lo, hi = float(x.min()), float(x.max())
    scaled = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    return (scaled * 255).round().to(torch.uint8).numpy()


def named_groups(step: int, prev_step: int, summary: dict) -> dict:
    """The groups of one probe step as an ``opposing.groups`` event names them: by their id at
    that step (``GET /api/runs/{id}/outliers/{step}`` has their members), label and size."""
    keep = ("kind", "majority_label", "share", "mean_change")
    return {
        "step": step,
        "prev_step": prev_step,
        "groups": [
            {"id": i, "size": len(g["members"]), **{k: g[k] for k in keep}}
            for i, g in enumerate(summary["groups"])
        ],
        "pairs": [{k: p[k] for k in ("rising", "falling", "score")} for p in summary["pairs"]],
    }


@dataclass(frozen=True)
class Monitor:
    """The monitor set on the training device, with what ``find_groups`` needs of it, and the
    ``opposing.monitor`` record that describes it (stored once, at step 0)."""

    indices: np.ndarray
    x: torch.Tensor
    y: torch.Tensor
    labels: np.ndarray
    inputs: np.ndarray  # flattened inputs: the default features
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def make_monitor(
    config: OpposingProbe,
    x: torch.Tensor,
    y: torch.Tensor,
    indices: np.ndarray,
    device: torch.device,
    *,
    n_train: int,
    image_shape: tuple[int, int] | None = None,
    planted: torch.Tensor | None = None,
    planted_total: int | None = None,
) -> Monitor:
    """The monitor set of examples ``x, y`` (CPU), numbered by ``indices`` in the training set;
    ``image_shape`` adds thumbnails, ``planted`` a synthetic task's ground truth."""
    arrays: dict[str, np.ndarray] = {"indices": np.asarray(indices), "labels": y.cpu().numpy()}
    space = "tokens" if token_ids(x) and config.features == "input" else config.features
    meta: dict[str, Any] = {
        **config.model_dump(),
        "grouped_on": GROUPED_ON[space],
        "size": len(y),
        "n_train": n_train,
        "image_shape": None if image_shape is None else list(image_shape),
    }
    if planted is not None:
        arrays["planted"] = planted.cpu().numpy()
        meta["planted_monitored"] = int(arrays["planted"].sum())
        meta["planted_total"] = planted_total
    if image_shape is not None:
        arrays["images"] = thumbnails(x.cpu(), image_shape)
    return Monitor(
        np.asarray(indices),
        x.to(device),
        y.to(device),
        y.cpu().numpy(),
        input_features(x),
        arrays,
        meta,
    )


GROUPED_ON = {
    "input": "inputs",
    "penultimate": "penultimate features",
    "tokens": "token frequencies",
}
"""What the groups of a monitor set are clustered on, as the dashboard names it."""


def token_ids(x: torch.Tensor) -> bool:
    """Whether ``x`` is a batch of token-id sequences (integers, one row per example)."""
    return not x.dtype.is_floating_point and x.ndim == 2


def input_features(x: torch.Tensor) -> np.ndarray:
    """The ``input`` features groups are clustered on: the flattened inputs, except for token
    sequences, whose ids are names, not coordinates — there each sequence's token frequencies
    (a bag of tokens: sequences that share characters or words point the same way)."""
    if not token_ids(x):
        return x.flatten(1).float().cpu().numpy()
    tokens = x.cpu().numpy()
    counts = np.stack([np.bincount(row, minlength=int(tokens.max()) + 1) for row in tokens])
    return (counts / tokens.shape[1]).astype(np.float32)


class OpposingHook(ScheduledHook):
    """``probes.opposing``: see the module docstring for what is stored."""

    name = PROBE

    def __init__(
        self,
        config: OpposingProbe,
        monitor: Monitor,
        example_loss_fn: LossFn,
        *,
        hessian: HessianProbe | None = None,
    ) -> None:
        """``example_loss_fn``: the loss per example (no reduction); ``hessian``: the Hessian
        probe's config when it runs too (the groups' alignment is computed at its steps)."""
        super().__init__(config.every)
        self.config = config
        self.example_loss_fn = example_loss_fn
        self.hessian = hessian
        self.detector = SpikeDetector()
        self._monitor = monitor
        self._stored_monitor = False
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._reporter: Reporter | None = None
        # history: losses at the last window + 1 probe steps (oscillation and the next deltas);
        # recent: the groups of the last SPIKE_CONTEXT probe steps; train_losses: the detector's
        # window, fed again on resume; unexplained: spikes waiting for the next probe step's card.
        self.state = {
            "steps": [],
            "history": [],
            "recent": [],
            "train_losses": [],
            "unexplained": [],
        }
        # θ at the last probe step, for the card's sharpness "before" (not checkpointed: after a
        # resume the first card has none)
        self._previous: list[torch.Tensor] | None = None

    def __call__(self, ctx: ProbeStep) -> None:
        self._reporter = ctx.reporter
        if ctx.loss is not None:
            self._pending.append((ctx.step - 1, ctx.loss))
            if len(self._pending) >= MAX_PENDING:
                self._drain()
        super().__call__(ctx)

    def state_dict(self) -> dict[str, Any]:
        self._drain()  # a checkpoint must not drop losses that were not looked at yet
        return self.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = {**self.state, **state}
        self.detector = SpikeDetector()
        for value in self.state["train_losses"]:
            self.detector.update(-1, value)  # what resuming the detector takes; results dropped

    # --- loss spikes --------------------------------------------------------------------------

    def _drain(self) -> None:
        """Read the collected train losses (one host sync) and feed the spike detector."""
        if not self._pending:
            return
        steps = [step for step, _ in self._pending]
        values = torch.stack([loss.float() for _, loss in self._pending]).cpu().tolist()
        self._pending.clear()
        kept = self.state["train_losses"]
        for step, value in zip(steps, values, strict=True):
            spike = self.detector.update(step, value)
            if math.isfinite(value):
                kept.append(value)
            if spike is not None and self._reporter is not None:
                found = {
                    "loss": spike.loss,
                    "median": spike.median,
                    "mad": spike.mad,
                    "threshold": spike.threshold,
                }
                self._reporter.event(step, "loss.spike", json_safe(found))
                self.state["unexplained"].append({"step": step, **found})
                recent = list(self.state["recent"])  # the reporter keeps the payload a while
                self._reporter.event(
                    step,
                    "opposing.groups",
                    {"probe_steps": [r["step"] for r in recent], "found": recent},
                )
        del kept[: -self.detector.window]

    # --- the probe ----------------------------------------------------------------------------

    def monitor(self, ctx: ProbeStep) -> Monitor:
        """The monitor set; stored once (at step 0) with its labels and ground truth."""
        if not self._stored_monitor:
            ctx.reporter.arrays(MONITOR, 0, self._monitor.arrays, self._monitor.meta)
            self._stored_monitor = True
        return self._monitor

    def probe(self, ctx: ProbeStep) -> None:
        self._drain()
        cfg, mon = self.config, self.monitor(ctx)
        started = time.perf_counter()
        now = per_example_losses(
            ctx.model,
            self.example_loss_fn,
            mon.x,
            mon.y,
            batch_size=BATCH,
            features="penultimate" if cfg.features == "penultimate" else None,
        )
        losses = now.losses
        steps, history = self.state["steps"], self.state["history"]
        mean_loss = float(np.mean(losses))
        meta: dict[str, Any] = {"prev_step": steps[-1] if steps else None, "mean_loss": mean_loss}
        scalars = {"opposing.monitor_loss": mean_loss}
        cost = {"n_forward": now.n_forward}
        if steps:
            features = mon.inputs if now.features is None else now.features
            found = find_groups(
                history[-1].numpy(),
                losses,
                features,
                mon.labels if mon.labels.ndim == 1 else None,  # sequences have no one label
                k=cfg.k,
                min_cosine=cfg.min_cosine,
                min_size=cfg.min_size,
                threshold=cfg.threshold,
            )
            summary = found.to_dict(mon.indices)
            series = np.stack([*(h.numpy() for h in history[-cfg.window :]), losses])
            for pair, entry in zip(found.pairs, summary["pairs"], strict=True):
                osc = oscillation(
                    series[:, pair.rising.members].mean(axis=1),
                    series[:, pair.falling.members].mean(axis=1),
                    window=cfg.window,
                )
                entry["oscillation"] = {
                    "alternation_rising": osc.alternation_rising,
                    "alternation_falling": osc.alternation_falling,
                    "correlation": osc.correlation,
                    "window": osc.window,
                }
            alignment = self._alignment(ctx, mon, found, summary)
            if alignment is not None:
                scalars["opposing.alignment"] = alignment.pop("largest")
                cost = {k: cost.get(k, 0) + v for k, v in alignment.items()}
            if self.state["unexplained"]:
                self._explain(ctx, mon, found, prev_step=steps[-1])
            best = max((p.score for p in found.pairs), default=math.nan)
            meta.update(summary, n_pairs=len(found.pairs), best_score=best)
            scalars.update({"opposing.pairs": float(len(found.pairs)), "opposing.score": best})
            recent = self.state["recent"]
            recent.append(json_safe(named_groups(ctx.step, steps[-1], summary)))
            del recent[:-SPIKE_CONTEXT]
        steps.append(ctx.step)
        self._previous = [p.detach().clone() for p in ctx.model.parameters()]
        history.append(torch.from_numpy(losses.copy()))
        del steps[: -(cfg.window + 1)], history[: -(cfg.window + 1)]
        meta["cost"] = {**cost, "seconds": time.perf_counter() - started}
        ctx.reporter.metrics(ctx.step, scalars)
        ctx.reporter.arrays(PROBE, ctx.step, {"losses": losses}, json_safe(meta))

    def _explain(self, ctx: ProbeStep, mon: Monitor, found: OpposingGroups, prev_step: int) -> None:
        """The cards of the spikes read since the last probe step; none on diverged weights (a
        spike often comes first), where Lanczos has nothing to say."""
        spikes, self.state["unexplained"] = self.state["unexplained"], []
        if not all(bool(torch.isfinite(p).all()) for p in ctx.model.parameters()):
            log.warning("step %d: non-finite weights, no card for the spikes before", ctx.step)
            return
        try:
            explain_spikes(ctx, mon, found, spikes, prev_step=prev_step, previous=self._previous)
        except torch.linalg.LinAlgError:
            log.warning("step %d: Lanczos failed, no card for the spikes before", ctx.step)

    def _alignment(
        self, ctx: ProbeStep, mon: Monitor, found: OpposingGroups, summary: dict
    ) -> dict[str, float] | None:
        """The cosine of each paired group's mean-loss gradient with the top Hessian eigenvector.

        Only at steps where the Hessian probe runs too (its config entry, when the service has
        one); the eigenvector is that of the monitor-set loss.  Adds ``alignment`` to the groups
        in ``summary`` and returns the largest |cosine| and the cost, or ``None``.
        """
        hessian = self.hessian
        if hessian is None or not found.pairs or ctx.step % hessian.every:
            return None
        eig = top_eigenvalues(
            ctx.model,
            ctx.loss_fn,
            [(mon.x, mon.y)],
            k=1,
            tol=hessian.tol,
            seed=ctx.seed,
        )
        vector, eigenvalue = eig.eigenvector(0), float(eig.eigenvalues[0])
        position = {id(g): i for i, g in enumerate(found.groups)}
        out = {
            "largest": 0.0,
            "n_hvp": eig.cost.n_hvp,
            "n_forward": eig.cost.n_forward,
            "n_backward": eig.cost.n_backward,
        }
        for pair in found.pairs:
            for group in (pair.rising, pair.falling):
                members = torch.as_tensor(group.members, device=mon.x.device)
                result = gradient_alignment(
                    ctx.model, ctx.loss_fn, mon.x[members], mon.y[members], vector
                )
                summary["groups"][position[id(group)]]["alignment"] = {
                    "cosine": result.cosine,
                    "eigenvalue": eigenvalue,
                }
                out["n_forward"] += result.n_forward
                out["n_backward"] += result.n_forward  # one backward pass per forward pass
                if math.isfinite(result.cosine):
                    out["largest"] = max(out["largest"], abs(result.cosine))
        return out
