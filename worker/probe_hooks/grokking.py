"""The grokking probe in the training loop: live detection and the progress measures before it.

Stored at every probe step s (docs/probes/grokking.md, "In the service"):

- scalars ``grok.weight_norm`` and ``grok.weight_norm.<layer>``, ``grok.relative_change`` and
  ``grok.relative_change.<layer>`` (‖θ_s − θ₀‖/‖θ₀‖), for modular tasks
  ``grok.fourier_sparsity`` (of the residue embeddings ``model.embed.weight[:p]``), with ``ntk``
  ``grok.ntk_alignment``;
- events ``grokking.memorized`` and ``grokking.generalized``, once each, at the probe step that
  confirms them (``hold`` probe steps at or above ``threshold``); the event's step is the first
  step of that held run, the payload has ``detected_at``, ``delay`` and ``is_grokking`` (and
  ``memorization_step`` on the generalized event).

The accuracies fed to the monitor are the hook's own evaluation of θ_s (eval mode, no grad) on
the first ``eval_examples`` of each split, the same examples as the loop's logged ``test.acc``, so
the events sit on the logged curves.  The hook keeps the points it fed in its checkpoint state and
replays them into a fresh monitor on resume.  θ₀ is not stored: the hook takes θ_s at step 0, and
after a resume asks its ``initial`` callable (the service rebuilds the model from the run's seed,
outside the run's RNG stream; without one, θ_s of the first probe step stands in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from server.schemas import GrokkingProbe
from worker.probe_hooks.common import Batch, ProbeStep, ScheduledHook
from worker.probes.grokking import (
    GENERALIZED,
    GrokkingMonitor,
    fourier_sparsity,
    ntk_alignment,
    relative_change,
    snapshot,
    weight_norm,
)
from worker.training.loop import evaluate

PROBE = "grokking"
SEED_OFFSET = 104_729  # the NTK subset's seed: config.seed + this


def balanced_subset(
    x: torch.Tensor, y: torch.Tensor, examples: int, per_class: int, seed: int
) -> Batch:
    """Up to ``per_class`` examples of each class, lowest classes first, ``examples`` in all
    (seeded, the same at every step): several per class, or ``YYᵀ`` is nearly diagonal."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    picked: list[torch.Tensor] = []
    for c in torch.unique(y).tolist():
        picked.append(order[y[order] == c][:per_class])
        if sum(len(i) for i in picked) >= examples:
            break
    idx = torch.cat(picked)[:examples]
    return x[idx], y[idx]


class GrokkingHook(ScheduledHook):
    name = PROBE

    def __init__(
        self,
        config: GrokkingProbe,
        train: Batch,
        test: Batch,
        *,
        ntk_data: Batch | None = None,
        modulus: int | None = None,
        initial: Callable[[], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        """``train``/``test``: the examples whose accuracy the monitor follows (on the model's
        device); ``ntk_data``: the NTK-alignment subset (default: ``balanced_subset`` of
        ``train``); ``modulus``: p of a modular task whose residue embeddings are
        ``model.embed.weight[:p]`` (adds ``grok.fourier_sparsity``); ``initial``: θ₀ after a
        resume."""
        super().__init__(config.every)
        self.config = config
        self.state = {"points": []}  # [step, train_acc, test_acc] fed to the monitor
        self.modulus = modulus
        self._rebuild_initial = initial
        self._monitor: GrokkingMonitor | None = None
        self._initial: dict[str, torch.Tensor] | None = None
        if config.ntk and ntk_data is None:
            ntk_data = balanced_subset(*train, config.ntk_examples, config.ntk_per_class, 0)
        self._ntk = ntk_data
        self._eval = [train, test]

    def new_monitor(self) -> GrokkingMonitor:
        cfg = self.config
        return GrokkingMonitor(cfg.threshold, cfg.hold, cfg.window, cfg.grokking_ratio)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the fed points and replay them (their events were reported before)."""
        self.state = {"points": [list(p) for p in state.get("points", [])]}
        self._monitor = self.new_monitor()
        for step, train_acc, test_acc in self.state["points"]:
            self._monitor.update(int(step), train_acc, test_acc)

    def initial(self, ctx: ProbeStep) -> dict[str, torch.Tensor]:
        """θ₀: θ_s itself at step 0, else what ``initial`` gives (θ_s when there is none)."""
        if self._initial is None:
            if ctx.step == 0 or self._rebuild_initial is None:
                self._initial = snapshot(ctx.model)
            else:
                rebuilt = self._rebuild_initial()
                self._initial = {k: v.to(ctx.device) for k, v in rebuilt.items()}
        return self._initial

    def accuracies(self, ctx: ProbeStep) -> tuple[float, float]:
        """Train and test accuracy of θ_s."""
        train_acc, test_acc = (evaluate(ctx.model, x, y)[1] for x, y in self._eval)
        return train_acc, test_acc

    def probe(self, ctx: ProbeStep) -> None:
        cfg = self.config
        if self._monitor is None:
            self._monitor = self.new_monitor()
        train_acc, test_acc = self.accuracies(ctx)
        self.state["points"].append([ctx.step, train_acc, test_acc])
        norms = weight_norm(ctx.model)
        change = relative_change(ctx.model, self.initial(ctx))
        values = {"grok.weight_norm": norms.total, "grok.relative_change": change.total}
        values |= {f"grok.weight_norm.{k}": v for k, v in norms.per_layer.items()}
        values |= {f"grok.relative_change.{k}": v for k, v in change.per_layer.items()}
        if self.modulus is not None:
            values["grok.fourier_sparsity"] = fourier_sparsity(
                ctx.model.embed.weight, k=cfg.fourier_k, p=self.modulus
            ).sparsity
        if cfg.ntk and self._ntk is not None:
            values["grok.ntk_alignment"] = ntk_alignment(
                ctx.model,
                *(t.to(ctx.device) for t in self._ntk),
                max_examples=cfg.ntk_examples,
                projections=cfg.ntk_projections,
                seed=ctx.seed,
            ).alignment
        ctx.reporter.metrics(ctx.step, {k: float(v) for k, v in values.items()})
        for event in self._monitor.update(ctx.step, train_acc, test_acc):
            payload: dict[str, Any] = {
                "detected_at": event.detected_at,
                "delay": event.delay,
                "is_grokking": event.is_grokking,
                "threshold": cfg.threshold,
                "train_acc": train_acc,
                "test_acc": test_acc,
            }
            if event.kind == GENERALIZED:
                payload["memorization_step"] = self._monitor.result().memorization_step
            ctx.reporter.event(event.step, event.kind, payload)
