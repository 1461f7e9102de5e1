"""Mixed precision and ``torch.compile`` for the training step (``RunConfig.amp``, ``.compile``).

- ``bf16``: the forward and the loss under ``torch.autocast`` in bfloat16 (CUDA and CPU); no
  scaling, bfloat16 has float32's range.
- ``fp16``: autocast in float16 with a ``GradScaler``; the gradients are unscaled right after the
  backward pass, so the logged gradient norm and anything reading ``.grad`` see true values, and a
  step with non-finite gradients is skipped by the scaler (its scale then halves).
- ``compile``: the training forward goes through ``torch.compile(model)``, which shares the
  model's parameters; checkpoints, probes and evaluation use the plain module (their names and
  ``functional_call`` stay as they are).

Weights, optimizer state and every probe stay in float32.  ``fp16`` and ``compile`` are CUDA
options: the server refuses them with ``device: cpu`` (``server.model_rules``); a ``device: auto``
run that lands on a CPU worker trains without them and records a ``run.precision`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from server.schemas import RunConfig

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The training step's autocast, forward, backward and optimizer step, as given (on any
    device: ``for_run`` drops what the device cannot do)."""

    def __init__(self, amp: str, compile: bool, model: nn.Module, device: torch.device) -> None:
        self.dtype = DTYPES.get(amp)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
        self.forward: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(model) if compile else model
        )
        self.ignored: list[str] = []

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Gradients of ``loss``, unscaled."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def event(self) -> dict[str, Any] | None:
        """Payload of the ``run.precision`` event when an option was dropped on this device."""
        if not self.ignored:
            return None
        return {"ignored": self.ignored, "device": self.device_type, "reason": "CUDA only"}


def for_run(config: RunConfig, model: nn.Module, device: torch.device) -> Precision:
    """``config``'s precision on ``device``: fp16 and compile on CUDA only (else ``ignored``)."""
    cuda = device.type == "cuda"
    fp16, compile = config.amp == "fp16", config.compile
    precision = Precision(
        "none" if fp16 and not cuda else config.amp, compile and cuda, model, device
    )
    precision.ignored = [
        n for n, on in (("amp fp16", fp16), ("compile", compile)) if on and not cuda
    ]
    return precision
