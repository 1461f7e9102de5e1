"""A reporter for the training loop that keeps everything in memory, as the database would."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch

from worker.training.loop import StepContext

if TYPE_CHECKING:
    from server.schemas import RunConfig


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


def record_and_store(database_url: str, run_id: int, config: RunConfig, hooks: list) -> Recorder:
    """Train ``config`` in this process (one torch thread) with ``hooks`` and write its array
    results and events to ``run_id`` as the worker's sink would; returns the recording."""
    from server.db import get_engine
    from server.store.results import ArrayRecord, EventRecord, write_arrays, write_events
    from worker.training.loop import train

    recorder = Recorder()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, recorder, hooks=hooks)
    finally:
        torch.set_num_threads(threads)
    with get_engine(database_url).begin() as connection:
        write_arrays(
            connection,
            run_id=run_id,
            records=[ArrayRecord(p, s, a, m) for (p, s), (a, m) in recorder.results.items()],
        )
        write_events(
            connection,
            run_id=run_id,
            events=[EventRecord(s, k, p) for (k, s), p in recorder.events.items()],
        )
    return recorder
