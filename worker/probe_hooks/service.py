"""The probe hooks in the worker's loop: each is built from the service's ``Task`` and
``RunConfig`` at its first step (the loop builds the task), then driven with a ``ProbeStep``.

This module is the only place where the hooks meet the service's task registry: it chooses their
data (seeded subsets of the training set, the first examples, the monitor set) exactly as the
service stores them, so a resumed run probes the same examples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from server.schemas import ModularTask, RunConfig
from worker.probe_hooks import collapse, grokking, hessian, landscape, opposing
from worker.probe_hooks.common import ProbeStep, ScheduledHook, chunks, fixed_subset
from worker.probes.grokking import snapshot
from worker.probes.per_example import MonitorSet
from worker.training.loop import StepContext, StepHook
from worker.training.tasks import Task, build_task

Builder = Callable[[Any, RunConfig, Task, torch.device], ScheduledHook]


def _hessian(entry: Any, config: RunConfig, task: Task, device: torch.device) -> ScheduledHook:
    seed = config.seed + hessian.SEED_OFFSET
    batch = fixed_subset(task.train_x, task.train_y, entry.batch_size, seed, device)
    n = len(task.train_y)
    size = min(config.batch_size or n, n)

    def minibatches(step: int) -> list:
        """``batch_sharpness`` random minibatches of the run's batch size (step-seeded)."""
        gen = torch.Generator().manual_seed(seed + step)
        picks = [torch.randperm(n, generator=gen)[:size] for _ in range(entry.batch_sharpness)]
        return [(task.train_x[i].to(device), task.train_y[i].to(device)) for i in picks]

    return hessian.HessianHook(entry, [batch], minibatches)


def _collapse(entry: Any, config: RunConfig, task: Task, device: torch.device) -> ScheduledHook:
    n = entry.max_examples  # the first examples, in the training set's order
    x, y = task.train_x[:n].to(device), task.train_y[:n].to(device)
    return collapse.CollapseHook(entry, chunks(x, y, collapse.BATCH), task.n_classes)


def _grokking(entry: Any, config: RunConfig, task: Task, device: torch.device) -> ScheduledHook:
    n = entry.eval_examples
    test = min(n, config.eval_max_examples)  # the loop's test.acc examples
    ntk = None
    if entry.ntk:
        seed = config.seed + grokking.SEED_OFFSET
        x, y = grokking.balanced_subset(
            task.train_x, task.train_y, entry.ntk_examples, entry.ntk_per_class, seed
        )
        ntk = x.to(device), y.to(device)

    def initial() -> dict[str, torch.Tensor]:
        """θ₀ from the seeded builder, outside the run's RNG stream."""
        with torch.random.fork_rng(devices=[]):
            return snapshot(build_task(config.task, config.seed, config.model).model)

    return grokking.GrokkingHook(
        entry,
        (task.train_x[:n].to(device), task.train_y[:n].to(device)),
        (task.test_x[:test].to(device), task.test_y[:test].to(device)),
        ntk_data=ntk,
        modulus=config.task.p if isinstance(config.task, ModularTask) else None,
        initial=initial,
    )


def _landscape(entry: Any, config: RunConfig, task: Task, device: torch.device) -> ScheduledHook:
    seed = config.seed + landscape.SEED_OFFSET
    x, y = fixed_subset(task.train_x, task.train_y, entry.eval_size, seed, device)
    batches = chunks(x, y, landscape.EVAL_BATCH)
    return landscape.LandscapeHook(entry, batches, {"eval_seed": seed})


def _opposing(entry: Any, config: RunConfig, task: Task, device: torch.device) -> ScheduledHook:
    chosen = MonitorSet.choose(len(task.train_y), entry.monitor_size, config.seed)
    idx = torch.as_tensor(chosen.indices)
    monitor = opposing.make_monitor(
        entry,
        task.train_x[idx],
        task.train_y[idx],
        chosen.indices,
        device,
        n_train=len(task.train_y),
        image_shape=task.image_shape,
        planted=None if task.planted is None else task.planted[idx],
        planted_total=None if task.planted is None else int(task.planted.sum()),
    )
    return opposing.OpposingHook(
        entry, monitor, task.example_loss_fn, hessian=config.probes.hessian
    )


BUILDERS: dict[str, tuple[str, Builder]] = {
    # "<ProbesConfig field>": (the hook's name in checkpoints, builder) — one line per probe
    "hessian": (hessian.PROBE, _hessian),
    "opposing": (opposing.PROBE, _opposing),
    "collapse": (collapse.PROBE, _collapse),
    "grokking": (grokking.PROBE, _grokking),
    "landscape": (landscape.PROBE, _landscape),
}


def build_hook(field: str, config: RunConfig, task: Task, device: torch.device) -> ScheduledHook:
    """The hook of ``config.probes.<field>`` for ``task`` (its data on ``device``)."""
    return BUILDERS[field][1](getattr(config.probes, field), config, task, device)


def build_hooks(config: RunConfig) -> list[StepHook]:
    """The loop hooks of the probes that ``config`` enables."""
    fields = type(config.probes).model_fields
    return [ServiceHook(f) for f in fields if getattr(config.probes, f) is not None]


def probe_step(ctx: StepContext) -> ProbeStep:
    """What the hooks see of the loop's step."""
    return ProbeStep(
        step=ctx.step,
        model=ctx.model,
        loss_fn=ctx.task.loss_fn,
        optimizer=ctx.optimizer,
        lr=ctx.lr,
        reporter=ctx.reporter,
        seed=ctx.config.seed,
        loss=ctx.loss,
        last=ctx.step == ctx.config.steps,
    )


class ServiceHook:
    """A ``StepHook`` of the loop that builds its probe hook at the first step it sees.

    Checkpointed state loaded before that (a resume) is handed to the hook once it exists.
    """

    def __init__(self, field: str) -> None:
        self.field = field
        self.name = BUILDERS[field][0]
        self.hook: ScheduledHook | None = None
        self._state: dict[str, Any] | None = None

    def __call__(self, ctx: StepContext) -> None:
        if self.hook is None:
            self.hook = build_hook(self.field, ctx.config, ctx.task, ctx.device)
            if self._state is not None:
                self.hook.load_state_dict(self._state)
        self.hook(probe_step(ctx))

    def state_dict(self) -> dict[str, Any]:
        if self.hook is None:
            return self._state or {}
        return self.hook.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.hook is None:
            self._state = state
        else:
            self.hook.load_state_dict(state)
