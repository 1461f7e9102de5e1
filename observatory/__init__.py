"""Observe your own PyTorch training loop: ``observatory.init`` starts a run on the server,
``run.log`` records scalars, ``run.probes(...)`` runs the service's probes (Hessian/edge of
stability, loss landscape, opposing signals, neural collapse, grokking) inside the loop.

    import observatory as obs
    run = obs.init(name="resnet-lr0.1", config={"lr": 0.1})
    probes = run.probes(model, loss_fn, probe_data, hessian={"every": 50, "k": 5})
    for step, (x, y) in enumerate(loader):
        probes.step(step, optimizer=opt)
        ...
        run.log({"train.loss": loss}, step=step)
    run.finish()

See docs/sdk.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from observatory import probes
    from observatory.run import Run, init
    from observatory.scheduler import Probes

__all__ = ["Probes", "Run", "init", "probes"]
# Imported on first use (PEP 562): a task plugin's schema imports ``observatory.plugins`` inside
# the API process, which must not import torch (docs/plugins.md).
_LAZY = {"Probes": "observatory.scheduler", "Run": "observatory.run", "init": "observatory.run"}


def __getattr__(name: str) -> Any:
    if name == "probes":
        return importlib.import_module("observatory.probes")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'observatory' has no attribute {name!r}")
