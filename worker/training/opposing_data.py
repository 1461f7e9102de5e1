"""Synthetic data with planted opposing signals, with the ground truth kept for scoring.

Rosenfeld & Risteski (2023), "Outliers with Opposing Signals Have an Outsized Effect on Neural
Network Optimization", show that a small group of examples sharing a large, consistent feature
whose presence is split between classes (sky in "plane" images and in others) dominates training:
the feature is useless for the label, yet it is so large that the network's response to it
swings back and forth, so the two halves of the group take turns at high loss.

:func:`make_opposing_signals` builds that situation with a known answer.  Each example is

    x = mu_y + noise * eps,        eps ~ N(0, I_d),

with class means ``mu_c = separation * q_c`` on orthonormal directions ``q_c``, so the core signal
determines the label.  A fraction ``planted_fraction`` of the examples, half from each of the two
``planted_classes``, also carries ``planted_scale * p`` along one fixed unit direction ``p``
orthogonal to every class mean.  The planted feature pulls the classifier towards one planted
class on half of those examples and towards the other on the rest.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["OpposingSignals", "make_opposing_signals"]


class OpposingSignals(NamedTuple):
    """A generated data set; unpacks as ``inputs, labels, planted, direction``.

    Attributes:
        inputs: ``(n, d)`` float32 inputs.
        labels: ``(n,)`` int64 labels in ``[0, n_classes)``.
        planted: ``(n,)`` bool ground truth, true where the planted feature was added.
        direction: ``(d,)`` float32 unit vector ``p`` of the planted feature.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    planted: torch.Tensor
    direction: torch.Tensor


def make_opposing_signals(
    n: int = 4096,
    d: int = 32,
    n_classes: int = 4,
    planted_fraction: float = 0.03,
    planted_scale: float = 48.0,
    *,
    separation: float = 3.0,
    noise: float = 1.0,
    planted_classes: tuple[int, int] = (0, 1),
    seed: int = 0,
) -> OpposingSignals:
    """Generate a classification set whose planted examples carry an opposing signal.

    Labels are balanced (``n // n_classes`` per class, the remainder to the first classes).  The
    planted examples are ``round(planted_fraction * n)`` examples, split as evenly as possible
    between the two ``planted_classes``; ``planted_fraction=0`` gives the control set with the
    same core data and no planted feature.  Pure function of its arguments: the same seed gives
    the same tensors on every machine.

    Args:
        n: number of examples.
        d: input dimension; must exceed ``n_classes`` so that ``p`` can be orthogonal to the means.
        n_classes: number of classes (at least 2).
        planted_fraction: fraction of examples carrying the planted feature, in ``[0, 1)``.
        planted_scale: norm of the planted feature; the core part has norm about
            ``sqrt(separation**2 + d * noise**2)`` (6.4 at the defaults), 7.5 times smaller.
            With SGD at lr 0.5, batch 256, on a 32-64-64-4 ReLU MLP the planted examples' losses
            then swing 17-58 times more per step than without the feature, the two halves in
            antiphase (tests/probes/test_opposing.py).
        separation: norm of each class mean.
        noise: standard deviation of the isotropic Gaussian noise.
        planted_classes: the two classes between which the planted feature is split.
        seed: seed of the generator.

    Returns:
        :class:`OpposingSignals` with inputs, labels, the planted mask and the direction ``p``.

    Raises:
        ValueError: on arguments outside the ranges above.
    """
    a, b = planted_classes
    if n_classes < 2 or d <= n_classes:
        raise ValueError(f"need n_classes >= 2 and d > n_classes, got {n_classes=}, {d=}")
    if not 0.0 <= planted_fraction < 1.0:
        raise ValueError(f"planted_fraction must be in [0, 1), got {planted_fraction}")
    if a == b or not (0 <= a < n_classes and 0 <= b < n_classes):
        raise ValueError(f"planted_classes must be two distinct classes, got {planted_classes}")
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    means = separation * basis[:, :n_classes].T
    direction = basis[:, n_classes]

    labels = (torch.arange(n) % n_classes)[torch.randperm(n, generator=gen)]
    inputs = means[labels] + noise * torch.randn(n, d, generator=gen, dtype=torch.float64)

    n_planted = round(planted_fraction * n)
    planted = torch.zeros(n, dtype=torch.bool)
    for cls, count in ((a, n_planted - n_planted // 2), (b, n_planted // 2)):
        members = torch.nonzero(labels == cls).flatten()
        if count > members.numel():
            raise ValueError(f"class {cls} has {members.numel()} examples, {count} to plant")
        planted[members[torch.randperm(members.numel(), generator=gen)[:count]]] = True
    inputs[planted] += planted_scale * direction
    return OpposingSignals(inputs.float(), labels.long(), planted, direction.float())
