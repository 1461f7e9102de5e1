"""``run.probes(...)``: the service's probe hooks (``worker.probe_hooks``) in a user's loop.

The hooks are the very ones the worker's loop drives; only their data comes from the caller:

- ``probe_data``: ``(inputs, targets)`` or a list of such batches, the same at every probe step:
  the Hessian probe's batch, the landscape's evaluation set, the collapse probe's examples (each
  may have its own: ``hessian={"data": ...}``, likewise ``landscape`` and ``collapse``, which also
  takes ``n_classes``);
- ``opposing={"monitor": (x, y) or batches, "indices": ids, "n_train": n, "image_shape": (h, w),
  ...}``: the monitored examples, their ids in the user's training set of n (default 0..n-1 of
  the monitored examples themselves) and, for images,
  thumbnails (``example_loss_fn=``: the loss per example; default: cross-entropy);
- ``grokking={"train": ..., "test": ..., "modulus": p, "ntk_data": ..., ...}``: the examples whose
  accuracies the detector follows (default: ``probe_data`` for both), for a modular task p (the
  Fourier sparsity of ``model.embed.weight[:p]``), the NTK-alignment examples (default: a
  class-balanced subset of ``train``).

Every other key is the probe's config, validated by the same pydantic model as a service run's
(``server.schemas``: same defaults, same limits).  ``True`` means the defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from server.schemas import CollapseProbe, GrokkingProbe, HessianProbe, LandscapeProbe, OpposingProbe
from worker.probe_hooks.collapse import CollapseHook
from worker.probe_hooks.common import Batch, LossFn, ProbeStep, ScheduledHook
from worker.probe_hooks.grokking import GrokkingHook
from worker.probe_hooks.hessian import HessianHook
from worker.probe_hooks.landscape import LandscapeHook
from worker.probe_hooks.opposing import OpposingHook, make_monitor

if TYPE_CHECKING:
    from observatory.run import Run

ProbeArg = dict[str, Any] | BaseModel | bool | None


def _config(model: type[BaseModel], value: ProbeArg, data_keys: Sequence[str]) -> tuple:
    """Split a probe argument into its validated config and its data entries."""
    if value is None or value is False:
        return None, {}
    if value is True:
        return model(), {}
    if isinstance(value, BaseModel):
        return model.model_validate(value.model_dump()), {}
    entries = dict(value)
    data = {k: entries.pop(k) for k in data_keys if k in entries}
    return model.model_validate(entries), data


def _batches(data: Any, device: torch.device) -> list[Batch]:  # noqa: ANN401
    """``(x, y)`` or a list of such batches, on ``device``."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        data = [data]
    return [(x.to(device), y.to(device)) for x, y in data]


def _joined(data: Any, device: torch.device) -> Batch:  # noqa: ANN401
    batches = _batches(data, device)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def cross_entropy_per_example(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets, reduction="none")


class Probes:
    """The probes due at each step, on θ_s: call ``step(s, optimizer=opt)`` before the update."""

    def __init__(
        self,
        run: Run,
        model: nn.Module,
        loss_fn: LossFn,
        probe_data: Any,  # noqa: ANN401 - (x, y) or a list of (x, y) batches
        *,
        hessian: ProbeArg = None,
        landscape: ProbeArg = None,
        opposing: ProbeArg = None,
        collapse: ProbeArg = None,
        grokking: ProbeArg = None,
        example_loss_fn: LossFn = cross_entropy_per_example,
        seed: int = 0,
        initial: Callable[[], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        self.run, self.model, self.loss_fn, self.seed = run, model, loss_fn, seed
        device = next(model.parameters()).device
        data = _batches(probe_data, device)
        self.hooks: list[ScheduledHook] = []
        configs: dict[str, dict] = {}
        cfg, extra = _config(HessianProbe, hessian, ("data",))
        if cfg is not None:
            self.hooks.append(HessianHook(cfg, _batches(extra.get("data", data), device)))
            configs["hessian"] = cfg.model_dump(mode="json")
        hessian_cfg = cfg
        keys = ("monitor", "indices", "n_train", "image_shape")
        cfg, extra = _config(OpposingProbe, opposing, keys)
        if cfg is not None:
            x, y = _joined(extra.get("monitor", data), torch.device("cpu"))
            monitor = make_monitor(
                cfg,
                x,
                y,
                np.asarray(extra.get("indices", np.arange(len(y)))),
                device,
                n_train=extra.get("n_train", len(y)),
                image_shape=extra.get("image_shape"),
            )
            self.hooks.append(OpposingHook(cfg, monitor, example_loss_fn, hessian=hessian_cfg))
            configs["opposing"] = cfg.model_dump(mode="json")
        cfg, extra = _config(CollapseProbe, collapse, ("data", "n_classes"))
        if cfg is not None:
            batches = _batches(extra.get("data", data), device)
            self.hooks.append(CollapseHook(cfg, batches, extra.get("n_classes")))
            configs["collapse"] = cfg.model_dump(mode="json")
        keys = ("train", "test", "modulus", "ntk_data")
        cfg, extra = _config(GrokkingProbe, grokking, keys)
        if cfg is not None:
            ntk = extra.get("ntk_data")
            self.hooks.append(
                GrokkingHook(
                    cfg,
                    _joined(extra.get("train", data), device),
                    _joined(extra.get("test", data), device),
                    ntk_data=None if ntk is None else _joined(ntk, device),
                    modulus=extra.get("modulus"),
                    initial=initial,
                )
            )
            configs["grokking"] = cfg.model_dump(mode="json")
        cfg, extra = _config(LandscapeProbe, landscape, ("data",))
        if cfg is not None:
            self.hooks.append(LandscapeHook(cfg, _batches(extra.get("data", data), device)))
            configs["landscape"] = cfg.model_dump(mode="json")
        run.describe_probes(configs)

    def step(
        self,
        step: int,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        loss: torch.Tensor | None = None,
        last: bool = False,
    ) -> None:
        """Run the probes due at ``step`` on the current weights (θ_s, before the update).

        ``loss``: the previous step's train loss (a tensor; feeds the loss-spike detector of the
        opposing probe without a sync); ``last``: the final step, where every probe runs.
        """
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed and torch.distributed.get_rank() != 0:
            return  # probes run on rank 0 only
        if optimizer is None and any(isinstance(h, HessianHook) for h in self.hooks):
            raise ValueError("the Hessian probe needs the optimizer (its stability threshold)")
        lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else 0.0
        ctx = ProbeStep(
            step=step,
            model=self.model,
            loss_fn=self.loss_fn,
            optimizer=optimizer,
            lr=lr,
            reporter=self.run,
            seed=self.seed,
            loss=None if loss is None else loss.detach(),
            last=last,
        )
        for hook in self.hooks:
            hook(ctx)

    def state_dict(self) -> dict[str, Any]:
        """The hooks' state, to save with a checkpoint of the user's own."""
        return {hook.name: hook.state_dict() for hook in self.hooks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for hook in self.hooks:
            if hook.name in state:
                hook.load_state_dict(state[hook.name])
