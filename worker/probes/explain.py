"""Why did the loss spike: opposing groups against the top Hessian eigenvector.

Rosenfeld & Risteski (2023), "Outliers with Opposing Signals Have an Outsized Effect on Neural
Network Optimization", link a loss spike to a few groups of examples with a shared, large feature
pulling towards opposite labels: the sharpness reaches the optimizer's stability threshold along a
direction that these groups' gradients point along, so the step along it overshoots and their
losses swing.  :func:`group_alignments` measures that link for given groups: the alignment
``|<v, g_G>| / (|v| |g_G|)`` of the top Hessian eigenvector ``v`` with each group's mean-loss
gradient ``g_G``, next to the same quantity for random groups of the same size, the baseline that
says whether the alignment means anything (a random direction in ``p`` dimensions has
``|cos| ~ 1/sqrt(p)``, but gradients of random groups share the mean gradient, so they are not
random directions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from worker.probes.opposing import gradient_alignment
from worker.probes.per_example import LossFn

__all__ = ["GroupAlignment", "group_alignments"]


@dataclass(frozen=True)
class GroupAlignment:
    """One group's gradient alignment with a direction, and that of random groups of its size.

    Attributes:
        alignment: ``|cos(g_G, v)|`` of the group's mean-loss gradient; NaN for a zero gradient.
        random: ``|cos|`` of each of the random groups (same size, drawn without replacement
            from the examples outside the group, or from all when fewer are outside).
        n_forward: batched forward passes spent (each followed by one backward pass).
    """

    alignment: float
    random: np.ndarray
    n_forward: int


def group_alignments(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    vector: Tensor | Mapping[str, Tensor],
    groups: Sequence[np.ndarray],
    *,
    n_random: int = 8,
    seed: int = 0,
) -> list[GroupAlignment]:
    """Alignment of each group's gradient with ``vector``, and of ``n_random`` random groups.

    Args:
        model: the network (its weights are not changed; see :func:`gradient_alignment`).
        loss_fn: mean-reduced loss.
        inputs: the examples the groups index (e.g. the opposing probe's monitor set).
        targets: their targets.
        vector: the direction, e.g. ``EigenResult.eigenvector(0)``.
        groups: positions into ``inputs`` of each group's members.
        n_random: random groups per group.
        seed: seed of the random groups (the same seed gives the same groups).

    Returns:
        One :class:`GroupAlignment` per group, in order.

    Raises:
        ValueError: if a group is empty.
    """
    rng = np.random.default_rng(seed)
    everyone = np.arange(len(targets))

    def cosine(rows: np.ndarray) -> tuple[float, int]:
        index = torch.as_tensor(rows, device=inputs.device)
        result = gradient_alignment(model, loss_fn, inputs[index], targets[index], vector)
        return abs(result.cosine), result.n_forward

    out = []
    for group in groups:
        members = np.asarray(group, dtype=np.int64)
        if not len(members):
            raise ValueError("an empty group")
        others = np.setdiff1d(everyone, members)
        pool = others if len(others) >= len(members) else everyone  # a group of most examples
        own, n_forward = cosine(members)
        random = []
        for _ in range(n_random):
            value, passes = cosine(rng.choice(pool, len(members), replace=False))
            random.append(value)
            n_forward += passes
        out.append(GroupAlignment(own, np.asarray(random), n_forward))
    return out
