"""The neural-collapse probe in the training loop: NC1–NC4 of the penultimate features.

Stored at every probe step s (docs/probes/collapse.md, "In the service"):

- scalars ``nc.nc1``, ``nc.equinorm``, ``nc.equiangular``, ``nc.max_angle`` and, where the last
  linear layer is the classifier, ``nc.nc3`` and ``nc.nc4``, all of the input of the last
  ``nn.Linear``; ``nc.<layer>.nc1`` for each module named in ``layers``;
- arrays ``collapse`` at s: ``cosines`` (C × C, centred class means), ``classes``, ``counts``,
  ``points`` (n × 2 float32), ``labels`` (n), ``means`` (C × 2): the 2-D projection on the top
  two principal directions of the class means; meta with the layer, ``etf`` = −1/(C−1), the
  scalars, the per-layer NC1 and the cost.

The probe goes twice over the first ``max_examples`` training examples, in the training set's
order (the same examples at every step), in eval mode under ``no_grad`` (``collect`` restores the
mode; weights and ``.grad`` are not touched).  Non-finite features (a diverged run) give
``nc.nc1`` = NaN and no arrays instead of failing the run.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from server.schemas import CollapseProbe
from worker.probe_hooks.common import Batch, ProbeStep, ScheduledHook
from worker.probes.collapse import NeuralCollapse, collect

log = logging.getLogger(__name__)

PROBE = "collapse"
BATCH = 1024  # examples per forward pass


def last_linear(model: nn.Module) -> str:
    """Name of the last ``nn.Linear`` in ``model.named_modules()`` (the classifier)."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError("the collapse probe needs a model with an nn.Linear classifier")
    return names[-1]


def scalars(result: NeuralCollapse) -> dict[str, float]:
    """The ``nc.*`` scalars of the main layer (NC3/NC4 only where defined)."""
    values = {
        "nc.nc1": result.nc1,
        "nc.equinorm": result.equinorm,
        "nc.equiangular": result.equiangular,
        "nc.max_angle": result.max_angle,
    }
    if result.nc3 is not None:
        values["nc.nc3"] = result.nc3
    if result.nc4 is not None:
        values["nc.nc4"] = result.nc4
    return {k: float(v) for k, v in values.items()}


class CollapseHook(ScheduledHook):
    name = PROBE

    def __init__(
        self, config: CollapseProbe, data: list[Batch], n_classes: int | None = None
    ) -> None:
        """``data``: labelled batches on the model's device, the same at every step (at most
        ``max_examples`` of them are used); ``n_classes``: default, the classifier's outputs."""
        super().__init__(config.every)
        self.config = config
        self.data = data
        self.n_classes = n_classes

    def probe(self, ctx: ProbeStep) -> None:
        main = last_linear(ctx.model)
        extra = [name for name in self.config.layers or [] if name != main]
        start = time.perf_counter()
        try:
            results = collect(
                ctx.model,
                self.data,
                layers=[main, *extra],
                max_examples=self.config.max_examples,
                n_classes=self.n_classes,
                max_points_per_class=self.config.points_per_class,
            )
        except torch.linalg.LinAlgError:  # non-finite features: the run diverged
            log.warning("collapse probe at step %d: non-finite features, NC set to NaN", ctx.step)
            ctx.reporter.metrics(ctx.step, {"nc.nc1": math.nan})
            return
        seconds = time.perf_counter() - start
        result = results[main]
        values = scalars(result)
        per_layer = {name: float(results[name].nc1) for name in extra}
        values |= {f"nc.{name}.nc1": v for name, v in per_layer.items()}
        n_classes = len(result.classes)
        meta: dict[str, Any] = {
            "layer": main,
            "n_classes": n_classes,
            "etf": -1.0 / (n_classes - 1) if n_classes > 1 else None,
            "examples": result.examples,
            "scalars": {k: v if math.isfinite(v) else None for k, v in values.items()},
            "layers": {k: v if math.isfinite(v) else None for k, v in per_layer.items()},
            "cost": {"forward_passes": result.forward_passes, "seconds": seconds},
        }
        projection = result.projection
        arrays = {
            "cosines": np.asarray(result.cosines, dtype=np.float32),
            "classes": np.asarray(result.classes),
            "counts": np.asarray(result.counts),
            "points": np.asarray(projection.points, dtype=np.float32),
            "labels": np.asarray(projection.labels),
            "means": np.asarray(projection.means, dtype=np.float32),
        }
        ctx.reporter.metrics(ctx.step, values)
        ctx.reporter.arrays(PROBE, ctx.step, arrays, meta)
