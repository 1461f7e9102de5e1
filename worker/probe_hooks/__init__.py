"""Probe scheduling: turns the RunConfig's ``probes`` entries into loop hooks.

Each probe that lands registers a factory here under its ``ProbesConfig`` field name; the factory
takes that entry's config and returns a ``worker.training.loop.StepHook``.  The probe itself stays
a plain library in ``worker.probes``; the hook only schedules it and reports its results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.schemas import RunConfig
from worker.training.loop import StepHook

FACTORIES: dict[str, Callable[[Any], StepHook]] = {}


def build_hooks(config: RunConfig) -> list[StepHook]:
    hooks = []
    for name in type(config.probes).model_fields:
        entry = getattr(config.probes, name)
        if entry is not None:
            hooks.append(FACTORIES[name](entry))
    return hooks
