"""What a task builder returns: the data of one task and a freshly initialised model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Augment = Callable[[torch.Tensor, int], torch.Tensor]  # (training batch, step) -> batch


def cross_entropy_sum(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets, reduction="sum")


def correct_count(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs.argmax(1) == targets).sum()


@dataclass(frozen=True)
class Task:
    """Tensors of a classification task and a freshly initialised model for it.

    ``planted`` is a synthetic task's ground truth, one flag per training example (which examples
    carry a planted feature), so that a probe's detection can be scored; ``image_shape`` marks
    inputs that are ``(height, width)`` images, shown as thumbnails; ``augment`` transforms
    each training batch (on the device, seeded by the step), never the probes' data.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    model: nn.Module
    n_classes: int
    planted: torch.Tensor | None = None
    image_shape: tuple[int, int] | None = None
    augment: Augment | None = None

    def loss_fn(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, targets)

    def example_loss_fn(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``loss_fn`` per example (no reduction): its mean is ``loss_fn``."""
        return nn.functional.cross_entropy(outputs, targets, reduction="none")

    def loss_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The summed loss of a batch (the loop's evaluation)."""
        return cross_entropy_sum(outputs, targets)

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Correctly predicted examples of a batch (fractions for sequences)."""
        return correct_count(outputs, targets)
