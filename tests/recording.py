"""A reporter for the training loop that keeps everything in memory, as the database would."""

from __future__ import annotations

import copy

import torch

from worker.training.loop import StepContext


class Recorder:
    """Points, events and array results by key; the last write of a key wins (upserts)."""

    def __init__(self) -> None:
        self.points: dict[int, dict[str, float]] = {}
        self.events: dict[tuple[str, int], dict] = {}
        self.results: dict[tuple[str, int], tuple[dict, dict]] = {}

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.points.setdefault(step, {}).update(values)

    def event(self, step: int, kind: str, payload: dict) -> None:
        self.events[kind, step] = payload

    def arrays(self, probe: str, step: int, arrays: dict, meta: dict) -> None:
        self.results[probe, step] = (arrays, meta)

    def flush(self) -> None:
        pass

    def stop_reason(self, step: int) -> str | None:
        return None


class Snapshot:
    """A loop hook that copies θ_s, the train-mode flag and the ``.grad`` tensors at every
    ``every``-th step: placed after a probe's hook, it shows what the probe left behind."""

    name = "snapshot"

    def __init__(self, every: int = 1) -> None:
        self.every = every
        self.taken: dict[int, tuple] = {}

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step % self.every == 0:
            grads = [None if p.grad is None else p.grad.clone() for p in ctx.model.parameters()]
            self.taken[ctx.step] = (copy.deepcopy(ctx.model), ctx.model.training, grads, ctx)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ForceSpikes:
    """A loop hook placed before the probes: the train loss of the ``steps`` given reads as
    ``loss``, so the opposing hook's spike detector fires there (a forced scenario)."""

    name = "force-spikes"

    def __init__(self, steps: list[int], loss: float = 50.0) -> None:
        self.steps, self.loss = set(steps), loss

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step - 1 in self.steps:  # ctx.loss is the loss of step s - 1
            ctx.loss = torch.tensor(self.loss)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
