"""What every probe hook shares: the step it sees, its schedule and checkpointable state.

A hook sees a ``ProbeStep``: the model at θ_s, the loss function, the optimizer and its lr, and
where to report.  Its data (probe batches, evaluation sets, the monitor set) are given when it is
built, so the same hook runs in the worker's loop (``worker.probe_hooks.service`` builds them from
the service's ``Task``) and in a user's own script (``observatory``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]


class Reporter(Protocol):
    """Where a hook's results go: the worker's database sink or the SDK's run."""

    def metrics(self, step: int, values: dict[str, float]) -> None: ...

    def event(self, step: int, kind: str, payload: dict[str, Any]) -> None: ...

    def arrays(self, probe: str, step: int, arrays: dict[str, np.ndarray], meta: dict) -> None: ...


@dataclass
class ProbeStep:
    """What a probe hook sees at step s (θ_s, before the update).

    ``loss`` is the train loss of step s - 1 (θ_{s-1} on its batch), detached and possibly still on
    the device, or ``None`` when not known; ``last`` marks the run's last step (every hook runs);
    ``seed`` seeds the probes' random starts.
    """

    step: int
    model: nn.Module
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer | None
    lr: float
    reporter: Reporter
    seed: int = 0
    loss: torch.Tensor | None = None
    last: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def json_safe(value: Any) -> Any:
    """Non-finite floats become ``None`` (JSON has neither NaN nor infinity), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def fixed_subset(
    x: torch.Tensor, y: torch.Tensor, size: int, seed: int, device: torch.device
) -> Batch:
    """The same ``size`` examples of ``(x, y)`` at every step (seeded), so values compare."""
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(y), generator=generator)[: min(size, len(y))]
    return x[idx].to(device), y[idx].to(device)


def chunks(x: torch.Tensor, y: torch.Tensor, size: int) -> list[Batch]:
    """``(x, y)`` cut into batches of at most ``size`` examples."""
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(y), size)]


class ScheduledHook:
    """Base of probe hooks: runs ``probe(ctx)`` at steps that are multiples of ``every``.

    Subclasses set ``name`` and implement ``probe``; state they keep across steps goes in
    ``self.state`` (tensors and plain containers only: it is saved in checkpoints).
    """

    name = "probe"

    def __init__(self, every: int) -> None:
        self.every = every
        self.state: dict[str, Any] = {}

    def __call__(self, ctx: ProbeStep) -> None:
        if ctx.step % self.every == 0 or ctx.last:
            self.probe(ctx)

    def probe(self, ctx: ProbeStep) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return self.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = dict(state)
