"""Opposing signals: the outlier groups behind loss spikes, found from per-example losses.

Rosenfeld & Risteski (2023), "Outliers with Opposing Signals Have an Outsized Effect on Neural
Network Optimization", find that small groups of training examples sharing a large, consistent
feature that pulls towards opposite labels dominate training: the groups' losses oscillate in
alternation, their gradients line up with the top Hessian eigenvector, and loss spikes come from
them.  They find the groups by tracking each example's loss between steps and looking at the
examples whose loss rose and fell most.  This module is that probe:

* measurement (re-exported from :mod:`worker.probes.per_example`): :class:`MonitorSet` and
  :func:`per_example_losses`, one batched no-grad pass, stored by :func:`losses_to_bytes`;
* :func:`find_groups`: the examples whose loss rose and fell most, grouped by feature direction,
  and rising/falling groups paired when they share a direction but not a label;
* :func:`oscillation` and :func:`gradient_alignment`: the antiphase of a pair's losses and the
  link to curvature; :class:`SpikeDetector` (from :mod:`worker.probes.spikes`) the loss spikes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from torch import Tensor, nn

from worker.probes.linalg import evaluation_mode
from worker.probes.per_example import (
    LossFn,
    MonitorSet,
    PerExampleLosses,
    example_loss_from_bytes,
    losses_from_bytes,
    losses_to_bytes,
    per_example_losses,
)
from worker.probes.spikes import Spike, SpikeDetector

__all__ = [
    "GradientAlignment",
    "Group",
    "GroupPair",
    "MonitorSet",
    "OpposingGroups",
    "Oscillation",
    "PerExampleLosses",
    "Spike",
    "SpikeDetector",
    "example_loss_from_bytes",
    "find_groups",
    "gradient_alignment",
    "losses_from_bytes",
    "losses_to_bytes",
    "oscillation",
    "per_example_losses",
]

_EPS = 1e-12


@dataclass(frozen=True, eq=False)
class Group:
    """Examples whose loss moved the same way and whose features point the same way.

    Attributes:
        kind: ``"rising"`` or ``"falling"``.
        members: positions in the monitor arrays, largest ``|loss change|`` first.
        label_counts: label histogram ``{label: count}``, empty without labels.
        majority_label: the most frequent label (the smallest on ties); ``None`` without labels.
        mean_direction: unit vector along the mean ``m`` of the members' centered unit features;
            ``None`` without features.
        coherence: ``|m|`` in ``[0, 1]`` (1: all members point the same way); ``None`` likewise.
        mean_change: mean loss change of the members.
        share: the members' ``sum |change|`` over that of all examples.
    """

    kind: str
    members: np.ndarray
    label_counts: dict[int, int]
    majority_label: int | None
    mean_direction: np.ndarray | None
    coherence: float | None
    mean_change: float
    share: float


@dataclass(frozen=True, eq=False)
class GroupPair:
    """A rising and a falling group that share a feature direction but not a majority label.

    Attributes:
        rising: the group whose loss rose.
        falling: the group whose loss fell.
        score: ``m_R . m_F``, the mean cosine between a rising and a falling member.
    """

    rising: Group
    falling: Group
    score: float


@dataclass(frozen=True, eq=False)
class OpposingGroups:
    """Result of :func:`find_groups`; no forward pass beyond the two monitor passes it compares.

    Attributes:
        rising: positions of the up to ``k`` examples whose loss rose most, largest rise first.
        falling: positions of the up to ``k`` examples whose loss fell most, largest fall first.
        groups: rising groups, then falling groups, each by decreasing share.
        pairs: pairs with ``score >= threshold`` by decreasing score; a group is in at most one.
        threshold: the pairing threshold used.
        total_change: ``sum |loss_after - loss_before|`` over all examples.
    """

    rising: np.ndarray
    falling: np.ndarray
    groups: tuple[Group, ...]
    pairs: tuple[GroupPair, ...]
    threshold: float
    total_change: float

    def to_dict(self, indices: np.ndarray | None = None) -> dict:
        """JSON-ready summary, members as training-set indices when given ``MonitorSet.indices``.

        Pairs name groups by their position in ``groups``; mean directions are left out.
        """

        def ids(positions: np.ndarray) -> list[int]:
            return (positions if indices is None else np.asarray(indices)[positions]).tolist()

        position = {id(g): i for i, g in enumerate(self.groups)}
        keep = ("kind", "majority_label", "coherence", "mean_change", "share")
        groups = [
            {
                "members": ids(g.members),
                "label_counts": {str(k): v for k, v in g.label_counts.items()},
            }
            | {name: getattr(g, name) for name in keep}
            for g in self.groups
        ]
        pairs = [
            {"rising": position[id(p.rising)], "falling": position[id(p.falling)], "score": p.score}
            for p in self.pairs
        ]
        return {
            "rising": ids(self.rising),
            "falling": ids(self.falling),
            "groups": groups,
            "pairs": pairs,
            "threshold": self.threshold,
            "total_change": self.total_change,
        }


def find_groups(
    loss_before: np.ndarray,
    loss_after: np.ndarray,
    features: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    *,
    k: int = 32,
    min_cosine: float = 0.5,
    min_size: int = 4,
    threshold: float = 0.5,
) -> OpposingGroups:
    """The examples whose loss rose and fell most between two probe steps, grouped and paired.

    With ``delta = loss_after - loss_before`` (non-finite changes count as 0), the rising set is
    the up to ``k`` examples with the largest ``delta > 0``, the falling set the up to ``k`` with
    the most negative ``delta < 0`` (stable sort: ties go to the lower position).  Without
    ``features`` each set is one group and nothing is paired.  With ``features``, rows are
    centered on their mean over all ``n`` examples and scaled to unit length ``u_i``; each set is
    clustered on its own by average-linkage agglomerative clustering on the cosine distance
    ``1 - u_i . u_j`` cut at ``1 - min_cosine`` (a cluster's members have mean pairwise cosine at
    least ``min_cosine``); clusters of at least ``min_size`` members are the groups.  A group's
    ``m = mean(u_i)`` gives its direction ``m / |m|`` and coherence ``|m|``.  A rising group ``R``
    and a falling group ``F`` score

        score(R, F) = m_R . m_F = mean_{i in R, j in F} u_i . u_j,

    and, where ``labels`` are given, need different majority labels.  Pairs are taken greedily by
    decreasing score, each group at most once; those with ``score >= threshold`` are reported.
    Opposing signals (Rosenfeld & Risteski 2023) are such pairs: one large shared feature, two
    labels, losses moving in opposition.  Nothing is random: equal inputs give equal results.

    Input features separate planted opposing groups from class-boundary examples far better than
    penultimate ones, where boundary examples of two classes also pair (docs/probes/opposing.md).

    Args:
        loss_before: ``(n,)`` per-example losses at the earlier probe step.
        loss_after: ``(n,)`` per-example losses at the later probe step.
        features: ``(n, p)`` input or penultimate-layer features of the same examples.
        labels: ``(n,)`` integer labels.
        k: size of the rising and of the falling set.
        min_cosine: where the clustering is cut, as a mean pairwise cosine.
        min_size: smallest cluster reported as a group.
        threshold: smallest pair score reported.

    Returns:
        :class:`OpposingGroups`; positions index the monitor arrays.

    Raises:
        ValueError: on mismatched shapes or ``k < 1``.
    """
    before = np.asarray(loss_before, dtype=np.float64)
    delta = np.asarray(loss_after, dtype=np.float64) - before
    if before.shape != delta.shape or delta.ndim != 1 or k < 1:
        raise ValueError("loss_before and loss_after must be equal-length 1-D arrays; k >= 1")
    if (features is not None and len(features) != len(delta)) or (
        labels is not None and len(labels) != len(delta)
    ):
        raise ValueError("features and labels need one row per example")
    delta = np.where(np.isfinite(delta), delta, 0.0)
    total = float(np.abs(delta).sum())
    top = np.argsort(-delta, kind="stable")[:k]
    bottom = np.argsort(delta, kind="stable")[:k]
    rising, falling = top[delta[top] > 0], bottom[delta[bottom] < 0]
    units = None
    if features is not None:
        centered = np.asarray(features, dtype=np.float64).reshape(len(delta), -1)
        centered = centered - centered.mean(axis=0)
        units = centered / np.maximum(np.linalg.norm(centered, axis=1, keepdims=True), _EPS)
    label_array = None if labels is None else np.asarray(labels)

    def groups_of(kind: str, members: np.ndarray) -> list[Group]:
        clusters = [members] if units is None else _clusters(units[members], members, min_cosine)
        found = [
            _group(kind, c, delta, total, units, label_array)
            for c in clusters
            if len(c) >= (1 if units is None else min_size)
        ]
        return sorted(found, key=lambda g: -g.share)

    ups, downs = groups_of("rising", rising), groups_of("falling", falling)
    pairs = [] if units is None else _pairs(ups, downs, units, threshold, labels is not None)
    return OpposingGroups(rising, falling, (*ups, *downs), tuple(pairs), threshold, total)


def _clusters(units: np.ndarray, members: np.ndarray, min_cosine: float) -> list[np.ndarray]:
    if len(members) < 2:
        return [members]
    distance = np.clip(1.0 - units @ units.T, 0.0, 2.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    ids = fcluster(tree, t=1.0 - min_cosine, criterion="distance")
    return [members[ids == c] for c in np.unique(ids)]


def _group(
    kind: str,
    members: np.ndarray,
    delta: np.ndarray,
    total: float,
    units: np.ndarray | None,
    labels: np.ndarray | None,
) -> Group:
    counts: dict[int, int] = {}
    if labels is not None:
        values, freq = np.unique(labels[members], return_counts=True)
        counts = {int(v): int(c) for v, c in zip(values, freq, strict=True)}
    majority = max(counts, key=lambda v: (counts[v], -v)) if counts else None
    direction = coherence = None
    if units is not None:
        mean = units[members].mean(axis=0)
        coherence = float(np.linalg.norm(mean))
        direction = (mean / max(coherence, _EPS)).astype(np.float32)
    share = float(np.abs(delta[members]).sum() / total) if total > 0 else 0.0
    return Group(
        kind, members, counts, majority, direction, coherence, float(delta[members].mean()), share
    )


def _pairs(
    ups: list[Group], downs: list[Group], units: np.ndarray, threshold: float, by_label: bool
) -> list[GroupPair]:
    candidates = []
    for i, up in enumerate(ups):
        for j, down in enumerate(downs):
            if by_label and up.majority_label == down.majority_label:
                continue
            score = float(units[up.members].mean(axis=0) @ units[down.members].mean(axis=0))
            if score >= threshold:
                candidates.append((-score, i, j))
    pairs, used_up, used_down = [], set(), set()
    for neg_score, i, j in sorted(candidates):
        if i not in used_up and j not in used_down:
            used_up.add(i)
            used_down.add(j)
            pairs.append(GroupPair(ups[i], downs[j], -neg_score))
    return pairs


@dataclass(frozen=True)
class Oscillation:
    """How a rising/falling pair's mean losses alternate over the last ``window`` changes.

    Attributes:
        alternation_rising: fraction of consecutive changes of the rising group's mean loss with
            opposite signs, in ``[0, 1]`` (1: up, down, up, ...; 0: monotone).  NaN if < 2.
        alternation_falling: the same for the falling group.
        correlation: Pearson correlation of the two groups' changes; opposing signals give values
            near -1.  NaN when either series of changes is constant or shorter than 2.
        window: number of changes used.
    """

    alternation_rising: float
    alternation_falling: float
    correlation: float
    window: int


def _alternation(changes: np.ndarray) -> float:
    return float(np.mean(changes[1:] * changes[:-1] < 0)) if len(changes) >= 2 else float("nan")


def oscillation(
    rising_series: np.ndarray, falling_series: np.ndarray, window: int = 20
) -> Oscillation:
    """Sign alternation and correlation of two groups' mean-loss series.

    Each series is a group's mean loss at successive probe steps, oldest first, e.g.
    ``history[:, group.members].mean(axis=1)`` for a ``(steps, n)`` loss history.  Over the last
    ``window`` changes ``c_t = s_t - s_{t-1}``, the alternation is the fraction of ``t`` with
    ``c_t * c_{t-1} < 0`` and the correlation is Pearson's ``r`` between the two groups' ``c_t``:
    changes, not levels, so that a shared downward trend does not hide the antiphase that
    Rosenfeld & Risteski (2023) report.  A period-2 oscillation aliases away at an even probe
    interval: probe at an odd one.  I.i.d. noise in the levels gives an alternation of 2/3.

    Args:
        rising_series: ``(T,)`` mean loss of the rising group.
        falling_series: ``(T,)`` mean loss of the falling group, at the same steps.
        window: number of most recent changes used.

    Returns:
        :class:`Oscillation`.
    """
    a = np.diff(np.asarray(rising_series, dtype=np.float64)[-(window + 1) :])
    b = np.diff(np.asarray(falling_series, dtype=np.float64)[-(window + 1) :])
    if len(a) != len(b):
        raise ValueError("the two series must cover the same probe steps")
    corr = float("nan")
    if len(a) >= 2 and a.std() > 0 and b.std() > 0:
        corr = float(np.corrcoef(a, b)[0, 1])
    return Oscillation(_alternation(a), _alternation(b), corr, len(a))


@dataclass(frozen=True)
class GradientAlignment:
    """Cosine between a group's mean-loss gradient ``g`` and a direction ``v`` in parameter space.

    Attributes:
        cosine: ``g . v / (|g| |v|)``; an eigenvector's sign is arbitrary, so ``|cosine|`` is the
            alignment.  NaN if either vector is zero.
        grad_norm: ``|g|``.
        n_examples: examples in the group (cost).
        n_forward: batched forward passes (cost), each followed by one backward pass.
    """

    cosine: float
    grad_norm: float
    n_examples: int
    n_forward: int


def gradient_alignment(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    vector: Tensor | Mapping[str, Tensor],
    *,
    batch_size: int = 1024,
) -> GradientAlignment:
    """Cosine between the gradient of a group's mean loss and, e.g., the top Hessian eigenvector.

    Rosenfeld & Risteski (2023) find the opposing groups' gradients aligned with the top Hessian
    eigenvector: they are what makes the loss sharp.  ``g`` is the gradient of the size-weighted
    mean of ``loss_fn`` over ``inputs``, in eval mode (each module's flag restored), with respect
    to the parameters ``vector`` covers.  The model's ``.grad`` fields are not touched.

    Args:
        model: the network.
        loss_fn: mean-reduced loss ``loss_fn(outputs, targets)``.
        inputs: the group's examples.
        targets: their targets.
        vector: a flat tensor over all parameters that require grad, in ``named_parameters()``
            order, or a ``{name: tensor}`` mapping over some of them (e.g.
            ``EigenResult.eigenvector(0)`` of a block Hessian), compared on those only.
        batch_size: examples per forward/backward pass.

    Returns:
        :class:`GradientAlignment`.

    Raises:
        ValueError: if ``vector`` does not match the parameters.
    """
    named = dict(model.named_parameters())
    if isinstance(vector, Mapping):
        if any(name not in named or named[name].shape != t.shape for name, t in vector.items()):
            raise ValueError("vector names parameters the model lacks, or with other shapes")
        params = [named[name] for name in vector]
        flat_v = torch.cat([t.reshape(-1) for t in vector.values()])
    else:
        params = [p for p in named.values() if p.requires_grad]
        flat_v = vector.reshape(-1)
    if flat_v.numel() != sum(p.numel() for p in params):
        raise ValueError(
            f"vector has {flat_v.numel()} entries for "
            f"{sum(p.numel() for p in params)} parameter entries"
        )
    device, n = params[0].device, len(inputs)
    grads = [torch.zeros_like(p) for p in params]
    n_forward = 0
    with evaluation_mode(model):
        for start in range(0, n, batch_size):
            x = inputs[start : start + batch_size].to(device)
            y = targets[start : start + batch_size].to(device)
            parts = torch.autograd.grad(
                loss_fn(model(x), y) * (len(x) / n), params, allow_unused=True
            )
            n_forward += 1
            for acc, part in zip(grads, parts, strict=True):
                if part is not None:
                    acc += part
    g = torch.cat([gr.reshape(-1) for gr in grads]).double()
    v = flat_v.to(g)
    g_norm, v_norm = float(g.norm()), float(v.norm())
    cosine = float(g @ v) / (g_norm * v_norm) if g_norm > 0 and v_norm > 0 else float("nan")
    return GradientAlignment(cosine, g_norm, n, n_forward)
