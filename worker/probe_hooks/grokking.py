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
replays them into a fresh monitor on resume.  θ₀ is not stored: it is rebuilt from the run's seed
(the task builders are deterministic), outside the run's RNG stream.
"""

from __future__ import annotations

from typing import Any

import torch

from server.schemas import GrokkingProbe, ModularTask
from worker.probe_hooks.common import ScheduledHook
from worker.probes.grokking import (
    GENERALIZED,
    GrokkingMonitor,
    fourier_sparsity,
    ntk_alignment,
    relative_change,
    snapshot,
    weight_norm,
)
from worker.training.loop import StepContext, evaluate
from worker.training.tasks import Task, build_task

PROBE = "grokking"
SEED_OFFSET = 104_729  # the NTK subset's seed: config.seed + this


def balanced_subset(
    task: Task, examples: int, per_class: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``per_class`` training examples of each class, lowest classes first, ``examples`` in
    all (seeded, the same at every step): several per class, or ``YYᵀ`` is nearly diagonal."""
    y = task.train_y
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    picked: list[torch.Tensor] = []
    for c in torch.unique(y).tolist():
        picked.append(order[y[order] == c][:per_class])
        if sum(len(i) for i in picked) >= examples:
            break
    idx = torch.cat(picked)[:examples]
    return task.train_x[idx], y[idx]


class GrokkingHook(ScheduledHook):
    name = PROBE

    def __init__(self, config: GrokkingProbe) -> None:
        super().__init__(config.every)
        self.config = config
        self.state = {"points": []}  # [step, train_acc, test_acc] fed to the monitor
        self._monitor: GrokkingMonitor | None = None
        self._initial: dict[str, torch.Tensor] | None = None
        self._ntk: tuple[torch.Tensor, torch.Tensor] | None = None
        self._eval: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def new_monitor(self) -> GrokkingMonitor:
        cfg = self.config
        return GrokkingMonitor(cfg.threshold, cfg.hold, cfg.window, cfg.grokking_ratio)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the fed points and replay them (their events were reported before)."""
        self.state = {"points": [list(p) for p in state.get("points", [])]}
        self._monitor = self.new_monitor()
        for step, train_acc, test_acc in self.state["points"]:
            self._monitor.update(int(step), train_acc, test_acc)

    def initial(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        """θ₀: θ_s itself at step 0, else the seeded builder's model (RNG state left alone)."""
        if self._initial is None:
            if ctx.step == 0:
                self._initial = snapshot(ctx.model)
            else:
                with torch.random.fork_rng(devices=[]):
                    model = build_task(ctx.config.task, ctx.config.seed).model
                self._initial = {k: v.to(ctx.device) for k, v in snapshot(model).items()}
        return self._initial

    def accuracies(self, ctx: StepContext) -> tuple[float, float]:
        """Train and test accuracy of θ_s (the evaluated examples kept on the device)."""
        if self._eval is None:
            n, task, device = self.config.eval_examples, ctx.task, ctx.device
            test = min(n, ctx.config.eval_max_examples)  # the loop's test.acc examples
            self._eval = [
                (task.train_x[:n].to(device), task.train_y[:n].to(device)),
                (task.test_x[:test].to(device), task.test_y[:test].to(device)),
            ]
        train_acc, test_acc = (evaluate(ctx.model, ctx.task, x, y)[1] for x, y in self._eval)
        return train_acc, test_acc

    def probe(self, ctx: StepContext) -> None:
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
        if isinstance(ctx.config.task, ModularTask):
            p = ctx.config.task.p
            values["grok.fourier_sparsity"] = fourier_sparsity(
                ctx.model.embed.weight, k=cfg.fourier_k, p=p
            ).sparsity
        if cfg.ntk:
            if self._ntk is None:
                x, y = balanced_subset(
                    ctx.task, cfg.ntk_examples, cfg.ntk_per_class, ctx.config.seed + SEED_OFFSET
                )
                self._ntk = x.to(ctx.device), y.to(ctx.device)
            values["grok.ntk_alignment"] = ntk_alignment(
                ctx.model,
                *self._ntk,
                max_examples=cfg.ntk_examples,
                projections=cfg.ntk_projections,
                seed=ctx.config.seed,
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
