"""What every probe hook shares: its schedule, a fixed probe batch, and checkpointable state."""

from __future__ import annotations

from typing import Any

import torch

from worker.training.loop import StepContext
from worker.training.tasks import Task


def fixed_subset(
    task: Task, size: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same ``size`` training examples at every step (seeded), so values compare over steps."""
    n = len(task.train_y)
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=generator)[: min(size, n)]
    return task.train_x[idx].to(device), task.train_y[idx].to(device)


class ScheduledHook:
    """Base of probe hooks: runs ``probe(ctx)`` at steps that are multiples of ``every``.

    Subclasses set ``name`` and implement ``probe``; state they keep across steps goes in
    ``self.state`` (tensors and plain containers only: it is saved in checkpoints).
    """

    name = "probe"

    def __init__(self, every: int) -> None:
        self.every = every
        self.state: dict[str, Any] = {}

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step % self.every == 0 or ctx.step == ctx.config.steps:
            self.probe(ctx)

    def probe(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return self.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = dict(state)
