"""Probe scheduling: turns the RunConfig's ``probes`` entries into loop hooks.

Each probe has a module here whose hook class takes that probe's config entry and implements
``worker.training.loop.StepHook`` (usually by subclassing ``common.ScheduledHook``); it is listed
in ``FACTORIES`` under its ``ProbesConfig`` field name.  The probe itself stays a plain library in
``worker.probes``; the hook only schedules it and reports its results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.schemas import RunConfig
from worker.probe_hooks.collapse import CollapseHook
from worker.probe_hooks.grokking import GrokkingHook
from worker.probe_hooks.hessian import HessianHook
from worker.probe_hooks.landscape import LandscapeHook
from worker.probe_hooks.opposing import OpposingHook
from worker.training.loop import StepHook

FACTORIES: dict[str, Callable[[Any], StepHook]] = {
    # "<ProbesConfig field>": HookClass,  — one line per probe
    "hessian": HessianHook,
    "opposing": OpposingHook,
    "collapse": CollapseHook,
    "grokking": GrokkingHook,
    "landscape": LandscapeHook,
}


def build_hooks(config: RunConfig) -> list[StepHook]:
    hooks = []
    for name in type(config.probes).model_fields:
        entry = getattr(config.probes, name)
        if entry is not None:
            hooks.append(FACTORIES[name](entry))
    return hooks
