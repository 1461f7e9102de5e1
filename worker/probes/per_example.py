"""Per-example losses of a fixed monitor set: one batched pass, stored as float32 bytes.

Tracking every training example's loss from one probe step to the next is how Rosenfeld &
Risteski (2023), "Outliers with Opposing Signals Have an Outsized Effect on Neural Network
Optimization", find the opposing-signal groups (:mod:`worker.probes.opposing`).  A fixed, seeded
:class:`MonitorSet` is measured every few steps by :func:`per_example_losses`: batched, no-grad,
in eval mode, on the model's device, optionally with the penultimate-layer features from the same
pass.  :func:`losses_to_bytes` stores the losses as 4 bytes each instead of JSON text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from worker.probes.linalg import evaluation_mode

__all__ = [
    "Features",
    "LossFn",
    "MonitorSet",
    "PerExampleLosses",
    "example_loss_from_bytes",
    "losses_from_bytes",
    "losses_to_bytes",
    "per_example_losses",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(outputs, targets)``: one loss per example (``reduction="none"``) or their mean."""
Features = Literal["penultimate", "input"]


@dataclass(frozen=True, eq=False)
class PerExampleLosses:
    """Per-example losses of one monitor pass.

    Attributes:
        losses: ``(n,)`` float32 losses, in the order of the inputs.
        features: ``(n, p)`` float32 features (see :func:`per_example_losses`) or ``None``.
        n_examples: examples evaluated (cost).
        n_forward: batched forward passes (cost); no backward pass.
    """

    losses: np.ndarray
    features: np.ndarray | None
    n_examples: int
    n_forward: int


def per_example_losses(
    model: nn.Module,
    loss_fn_none: LossFn,
    inputs: Tensor,
    targets: Tensor,
    *,
    batch_size: int = 1024,
    features: Features | None = None,
) -> PerExampleLosses:
    """Per-example losses in batched, no-grad forward passes in eval mode on the model's device.

    Each module's train/eval flag is restored afterwards.  ``features="penultimate"`` records, by
    a forward pre-hook on the last ``nn.Linear`` in ``model.modules()`` order, that layer's input
    flattened per example, from the same pass; ``features="input"`` returns the flattened inputs.

    Args:
        model: the network.
        loss_fn_none: loss with ``reduction="none"``, one value per example.
        inputs: ``(n, ...)`` inputs, on any device.
        targets: ``(n, ...)`` targets.
        batch_size: examples per forward pass.
        features: which features to return with the losses, if any.

    Returns:
        :class:`PerExampleLosses` with float32 numpy arrays on the CPU.

    Raises:
        ValueError: if ``loss_fn_none`` does not return one loss per example, or penultimate
            features are asked of a model without an ``nn.Linear`` run once per forward pass.
    """
    device = next(model.parameters()).device
    captured: list[Tensor] = []
    handle = None
    if features == "penultimate":
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("penultimate features need a model with an nn.Linear layer")
        handle = linears[-1].register_forward_pre_hook(
            lambda _module, args: captured.append(args[0].detach().flatten(1).float().cpu())
        )
    losses, feats, n_forward = [], [], 0
    try:
        with evaluation_mode(model), torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                x = inputs[start : start + batch_size].to(device)
                loss = loss_fn_none(model(x), targets[start : start + batch_size].to(device))
                n_forward += 1
                if loss.shape != (len(x),):
                    raise ValueError(
                        f"loss_fn_none gave shape {tuple(loss.shape)}, expected "
                        f"({len(x)},): use reduction='none'"
                    )
                losses.append(loss.float().cpu())
                if features == "penultimate" and len(captured) != 1:
                    raise ValueError("the last nn.Linear must run once per forward pass")
                if features is not None:
                    feats.append(captured.pop() if captured else x.flatten(1).float().cpu())
    finally:
        if handle is not None:
            handle.remove()
    loss_array = torch.cat(losses).numpy() if losses else np.zeros(0, np.float32)
    return PerExampleLosses(
        loss_array, torch.cat(feats).numpy() if feats else None, len(loss_array), n_forward
    )


@dataclass(frozen=True, eq=False)
class MonitorSet:
    """A fixed, seeded subset of the training set whose per-example losses are tracked.

    Attributes:
        indices: sorted int64 indices into the training set; position ``i`` of every monitor
            array (losses, features, group members) is training example ``indices[i]``.
    """

    indices: np.ndarray

    @classmethod
    def choose(cls, n_train: int, size: int = 2048, seed: int = 0) -> MonitorSet:
        """``min(size, n_train)`` distinct indices drawn uniformly by ``default_rng(seed)``."""
        picked = np.random.default_rng(seed).choice(n_train, min(size, n_train), replace=False)
        return cls(np.sort(picked).astype(np.int64))

    def __len__(self) -> int:
        return len(self.indices)

    def measure(
        self,
        model: nn.Module,
        loss_fn_none: LossFn,
        inputs: Tensor,
        targets: Tensor,
        *,
        batch_size: int = 1024,
        features: Features | None = None,
    ) -> PerExampleLosses:
        """:func:`per_example_losses` on the monitored rows of the full ``inputs, targets``."""
        idx = torch.as_tensor(self.indices, device=inputs.device)
        return per_example_losses(
            model,
            loss_fn_none,
            inputs[idx],
            targets[idx.to(targets.device)],
            batch_size=batch_size,
            features=features,
        )


def losses_to_bytes(losses: np.ndarray | Tensor) -> bytes:
    """Per-example losses as little-endian float32 bytes, 4 per example (not JSON text)."""
    if isinstance(losses, Tensor):
        losses = losses.detach().cpu().numpy()
    return np.ascontiguousarray(losses, dtype="<f4").reshape(-1).tobytes()


def losses_from_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`losses_to_bytes`: a writable, native-order float32 array."""
    if len(data) % 4:
        raise ValueError(f"{len(data)} bytes is not a whole number of float32 values")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def example_loss_from_bytes(data: bytes, index: int) -> float:
    """One example's loss from :func:`losses_to_bytes` output, without decoding the others."""
    if not 0 <= index < len(data) // 4:
        raise IndexError(f"index {index} out of range for {len(data) // 4} losses")
    return float(np.frombuffer(data, dtype="<f4", count=1, offset=4 * index)[0])
