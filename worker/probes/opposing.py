"""Opposing signals: per-example loss dynamics and the outlier groups behind loss spikes.

Rosenfeld & Risteski (2023), "Outliers with Opposing Signals Have an Outsized Effect on Neural
Network Optimization", find that small groups of training examples sharing a large, consistent
feature that pulls towards opposite labels dominate training: the groups' losses oscillate in
alternation, their gradients line up with the top Hessian eigenvector, and loss spikes come from
them.  They find the groups by tracking each example's loss between steps and looking at the
examples whose loss rose and fell most.  This module does that on a fixed monitor set:

* :class:`MonitorSet` and :func:`per_example_losses`: one batched, no-grad, eval-mode pass giving
  float32 per-example losses (and penultimate-layer features), stored with
  :func:`losses_to_bytes`.
* :func:`find_groups`: the ``k`` examples whose loss rose most and the ``k`` whose loss fell most,
  clustered by feature direction, and rising/falling groups paired when they share a direction
  but not a label.
* :func:`oscillation`, :func:`gradient_alignment` and :class:`SpikeDetector`: the alternation of
  a pair's losses, the link to curvature, and the loss spikes.

Plain PyTorch/numpy/scipy: no database, no service.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from torch import nn

__all__ = [
    "GradientAlignment",
    "Group",
    "GroupPair",
    "LossFn",
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

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss_fn(outputs, targets)``: per example (``reduction="none"``) or the mean, as stated."""

_EPS = 1e-12
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True, eq=False)
class PerExampleLosses:
    """Per-example losses of one monitor pass.

    Attributes:
        losses: ``(n,)`` float32 losses, in the order of the inputs.
        features: ``(n, p)`` float32 inputs of the model's last ``nn.Linear`` (penultimate-layer
            activations), or ``None`` when not requested.
        n_examples: examples evaluated (cost).
        n_forward: batched forward passes made (cost); no backward pass.
    """

    losses: np.ndarray
    features: np.ndarray | None
    n_examples: int
    n_forward: int


def per_example_losses(
    model: nn.Module,
    loss_fn_none: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int = 1024,
    features: bool = False,
) -> PerExampleLosses:
    """Per-example losses in batched, no-grad forward passes in eval mode on the model's device.

    The model's train/eval mode is restored afterwards.  With ``features=True`` a forward
    pre-hook on the last ``nn.Linear`` (in ``model.modules()`` order) records its input,
    flattened per example, so the penultimate representation comes from the same pass.

    Args:
        model: the network.
        loss_fn_none: loss with ``reduction="none"``, returning one value per example.
        inputs: ``(n, ...)`` inputs, on any device.
        targets: ``(n, ...)`` targets.
        batch_size: examples per forward pass.
        features: also return the penultimate-layer features.

    Returns:
        :class:`PerExampleLosses` with float32 numpy arrays on the CPU.

    Raises:
        ValueError: if ``loss_fn_none`` does not return one loss per example, or ``features`` is
            requested from a model without an ``nn.Linear`` called once per forward pass.
    """
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    handle = None
    if features:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("features=True needs a model with an nn.Linear layer")
        handle = linears[-1].register_forward_pre_hook(
            lambda _module, args: captured.append(args[0].detach().flatten(1).float().cpu())
        )
    was_training = model.training
    model.eval()
    losses, feats, n_forward = [], [], 0
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                x = inputs[start : start + batch_size].to(device)
                y = targets[start : start + batch_size].to(device)
                loss = loss_fn_none(model(x), y)
                n_forward += 1
                if loss.shape != (len(x),):
                    raise ValueError(
                        f"loss_fn_none returned shape {tuple(loss.shape)}, "
                        f"expected ({len(x)},): use reduction='none'"
                    )
                losses.append(loss.float().cpu())
                if features:
                    if len(captured) != 1:
                        raise ValueError("the last nn.Linear must run once per forward pass")
                    feats.append(captured.pop())
    finally:
        model.train(was_training)
        if handle is not None:
            handle.remove()
    loss_array = torch.cat(losses).numpy() if losses else np.zeros(0, np.float32)
    feat_array = torch.cat(feats).numpy() if feats else None
    return PerExampleLosses(loss_array, feat_array, len(loss_array), n_forward)


@dataclass(frozen=True, eq=False)
class MonitorSet:
    """A fixed, seeded subset of the training set whose per-example losses are tracked.

    Attributes:
        indices: sorted int64 indices into the training set; position ``i`` of every monitor
            array (losses, features, group members) refers to example ``indices[i]``.
    """

    indices: np.ndarray

    @classmethod
    def choose(cls, n_train: int, size: int = 2048, seed: int = 0) -> MonitorSet:
        """Draw ``min(size, n_train)`` distinct indices uniformly with ``numpy``'s PCG64(seed)."""
        rng = np.random.default_rng(seed)
        picked = rng.choice(n_train, size=min(size, n_train), replace=False)
        return cls(np.sort(picked).astype(np.int64))

    def __len__(self) -> int:
        return len(self.indices)

    def measure(
        self,
        model: nn.Module,
        loss_fn_none: LossFn,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        batch_size: int = 1024,
        features: bool = False,
    ) -> PerExampleLosses:
        """:func:`per_example_losses` on the monitored examples of ``(inputs, targets)``."""
        idx = torch.as_tensor(self.indices, device=inputs.device)
        return per_example_losses(
            model, loss_fn_none, inputs[idx], targets[idx], batch_size=batch_size, features=features
        )


@dataclass(frozen=True, eq=False)
class Group:
    """Examples whose loss moved the same way and whose features point the same way.

    Attributes:
        kind: ``"rising"`` or ``"falling"``.
        members: positions in the monitor arrays, largest ``|loss change|`` first.
        label_counts: label histogram ``{label: count}`` (empty without labels).
        majority_label: most frequent label (smallest on ties), ``None`` without labels.
        mean_direction: unit vector of the mean of the members' unit feature vectors
            (centered features), ``None`` without features.
        coherence: length of that mean, in ``[0, 1]``: 1 when all members point the same way.
        mean_change: mean loss change of the members.
        share: ``sum |change|`` of the members over ``sum |change|`` of all examples.
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
    """A rising and a falling group sharing a feature direction but not a majority label.

    Attributes:
        rising: the group whose loss rose.
        falling: the group whose loss fell.
        score: mean cosine between a rising and a falling member's centered features,
            ``coherence_r * coherence_f * cos(direction_r, direction_f)``, in ``[-1, 1]``.
    """

    rising: Group
    falling: Group
    score: float


@dataclass(frozen=True, eq=False)
class OpposingGroups:
    """Result of :func:`find_groups`; costs nothing beyond the two stored monitor passes.

    Attributes:
        rising: positions of the (up to) ``k`` examples whose loss rose most, largest first.
        falling: positions of the (up to) ``k`` examples whose loss fell most, largest fall first.
        groups: rising groups then falling groups, each by decreasing share.
        pairs: pairs with ``score >= threshold``, by decreasing score; a group is in at most one.
        threshold: the pairing threshold used.
        total_change: ``sum |loss_after - loss_before|`` over all examples.
    """

    rising: np.ndarray
    falling: np.ndarray
    groups: tuple[Group, ...]
    pairs: tuple[GroupPair, ...]
    threshold: float
    total_change: float


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
    the up to ``k`` examples with the largest ``delta > 0`` and the falling set the up to ``k``
    with the most negative ``delta < 0`` (stable sort: ties go to the lower position).

    Without ``features`` each set is one group and nothing is paired.  With ``features``, rows
    are centered on their mean over all ``n`` examples and scaled to unit length ``u_i``; each
    set is clustered separately by average-linkage agglomerative clustering on the cosine
    distance ``1 - u_i . u_j``, cut at ``1 - min_cosine`` (members of a cluster have mean pairwise
    cosine at least ``min_cosine``), and clusters of at least ``min_size`` members become groups.
    A group's mean ``m = mean(u_i)`` gives its direction ``m / |m|`` and coherence ``|m|``.  A
    rising group ``R`` and a falling group ``F`` are scored by

        score(R, F) = m_R . m_F = mean over i in R, j in F of u_i . u_j,

    the mean cosine between their members; with ``labels`` the two must have different majority
    labels.  Pairs are taken greedily by decreasing score, each group at most once, and only
    those with ``score >= threshold`` are reported.  Opposing signals (Rosenfeld & Risteski 2023)
    are exactly such pairs: one shared large feature, two labels, losses moving in opposition.

    The procedure has no randomness: the same inputs give the same result.

    Args:
        loss_before: ``(n,)`` per-example losses at the earlier probe step.
        loss_after: ``(n,)`` per-example losses at the later probe step.
        features: ``(n, p)`` input or penultimate-layer features of the same examples.
        labels: ``(n,)`` integer labels.
        k: size of the rising and of the falling set.
        min_cosine: cluster cut, as a mean pairwise cosine.
        min_size: smallest cluster reported as a group.
        threshold: smallest pair score reported.

    Returns:
        :class:`OpposingGroups`; positions index the monitor arrays.

    Raises:
        ValueError: on mismatched shapes or ``k < 1``.
    """
    before = np.asarray(loss_before, dtype=np.float64)
    delta = np.asarray(loss_after, dtype=np.float64) - before
    n = len(delta)
    if before.shape != delta.shape or delta.ndim != 1 or k < 1:
        raise ValueError("loss_before and loss_after must be equal-length 1-D arrays, k >= 1")
    if features is not None and len(features) != n or labels is not None and len(labels) != n:
        raise ValueError("features and labels must have one row per example")
    delta = np.where(np.isfinite(delta), delta, 0.0)
    total = float(np.abs(delta).sum())
    order = np.argsort(-delta, kind="stable")
    rising = order[:k][delta[order[:k]] > 0]
    order = np.argsort(delta, kind="stable")
    falling = order[:k][delta[order[:k]] < 0]
    units = None
    if features is not None:
        centered = np.asarray(features, dtype=np.float64)
        centered = centered - centered.mean(axis=0)
        norms = np.linalg.norm(centered, axis=1, keepdims=True)
        units = centered / np.maximum(norms, _EPS)

    def make(kind: str, members: np.ndarray) -> Group:
        counts: dict[int, int] = {}
        if labels is not None:
            values, freq = np.unique(np.asarray(labels)[members], return_counts=True)
            counts = {int(v): int(c) for v, c in zip(values, freq, strict=True)}
        majority = max(counts, key=lambda v: (counts[v], -v)) if counts else None
        direction, coherence = None, None
        if units is not None:
            mean = units[members].mean(axis=0)
            coherence = float(np.linalg.norm(mean))
            direction = (mean / max(coherence, _EPS)).astype(np.float32)
        share = float(np.abs(delta[members]).sum() / total) if total > 0 else 0.0
        return Group(
            kind,
            members,
            counts,
            majority,
            direction,
            coherence,
            float(delta[members].mean()),
            share,
        )

    def clusters(members: np.ndarray) -> list[np.ndarray]:
        if units is None:
            return [members] if len(members) else []
        if len(members) < 2:
            found = [members]
        else:
            dist = np.clip(1.0 - units[members] @ units[members].T, 0.0, 2.0)
            tree = linkage(squareform(dist, checks=False), method="average")
            ids = fcluster(tree, t=1.0 - min_cosine, criterion="distance")
            found = [members[ids == c] for c in np.unique(ids)]
        return [c for c in found if len(c) >= min_size]

    ups = sorted((make("rising", c) for c in clusters(rising)), key=lambda g: -g.share)
    downs = sorted((make("falling", c) for c in clusters(falling)), key=lambda g: -g.share)
    candidates = []
    if units is not None:
        for i, up in enumerate(ups):
            for j, down in enumerate(downs):
                if labels is not None and up.majority_label == down.majority_label:
                    continue
                score = float(units[up.members].mean(0) @ units[down.members].mean(0))
                if score >= threshold:
                    candidates.append((-score, i, j))
    pairs, used_up, used_down = [], set(), set()
    for neg_score, i, j in sorted(candidates):
        if i not in used_up and j not in used_down:
            used_up.add(i)
            used_down.add(j)
            pairs.append(GroupPair(ups[i], downs[j], -neg_score))
    return OpposingGroups(rising, falling, (*ups, *downs), tuple(pairs), threshold, total)


@dataclass(frozen=True)
class Oscillation:
    """How a rising/falling pair's losses alternate over the last ``window`` probe steps.

    Attributes:
        alternation_rising: fraction of consecutive loss changes of the rising group's mean loss
            with opposite signs, in ``[0, 1]`` (1: up, down, up, ...; 0: monotone).
        alternation_falling: the same for the falling group.
        correlation: Pearson correlation of the two groups' loss changes; opposing signals give
            values near -1.  NaN when either series of changes is constant.
        window: loss changes used (probe steps minus one).
    """

    alternation_rising: float
    alternation_falling: float
    correlation: float
    window: int


def _alternation(changes: np.ndarray) -> float:
    if len(changes) < 2:
        return float("nan")
    return float(np.mean(changes[1:] * changes[:-1] < 0))


def oscillation(
    rising_series: np.ndarray, falling_series: np.ndarray, window: int = 20
) -> Oscillation:
    """Sign alternation and correlation of two groups' mean-loss series.

    Each series is a group's mean loss at successive probe steps, oldest first (e.g.
    ``history[:, group.members].mean(axis=1)`` for a ``(steps, n)`` loss history).  Over the last
    ``window`` changes ``c_t = s_t - s_{t-1}``, the alternation is the fraction of ``t`` with
    ``c_t * c_{t-1} < 0``; the correlation is Pearson's ``r`` between the two groups' ``c_t``.
    Changes rather than levels are correlated so that a shared downward trend does not mask the
    opposition (Rosenfeld & Risteski 2023, the paired groups' losses move in antiphase).
    With a period-2 oscillation, probe at an odd interval, or the alternation aliases away.

    Args:
        rising_series: ``(T,)`` mean loss of the rising group.
        falling_series: ``(T,)`` mean loss of the falling group.
        window: number of most recent changes used.

    Returns:
        :class:`Oscillation` (NaN where fewer than two changes, or a constant series).
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
    """Cosine between a group's mean-loss gradient and a direction in parameter space.

    Attributes:
        cosine: ``g . v / (|g| |v|)``; an eigenvector's sign is arbitrary, so ``|cosine|`` is
            the alignment.  NaN if either vector is zero.
        grad_norm: ``|g|``.
        n_examples: examples in the group (cost).
        n_forward: batched forward passes (cost); as many backward passes.
    """

    cosine: float
    grad_norm: float
    n_examples: int
    n_forward: int


def gradient_alignment(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    vector: torch.Tensor | Mapping[str, torch.Tensor],
    *,
    batch_size: int = 1024,
) -> GradientAlignment:
    """Cosine between the gradient of a group's mean loss and e.g. the top Hessian eigenvector.

    Rosenfeld & Risteski (2023) observe that the opposing groups' gradients align with the top
    Hessian eigenvector, which is how they drive the sharpness and the edge of stability.  The
    gradient ``g`` of the size-weighted mean of ``loss_fn`` over ``inputs`` is taken in eval mode
    (restored afterwards), over the parameters that require grad.

    Args:
        model: the network.
        loss_fn: mean-reduced loss ``loss_fn(outputs, targets)``.
        inputs: the group's examples.
        targets: their targets.
        vector: flat tensor over the trainable parameters in ``named_parameters()`` order, or a
            ``{name: tensor}`` mapping (absent names count as zero).
        batch_size: examples per forward/backward pass.

    Returns:
        :class:`GradientAlignment`.

    Raises:
        ValueError: if ``vector`` does not match the trainable parameters.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    if isinstance(vector, Mapping):
        unknown = set(vector) - {name for name, _ in named}
        if unknown:
            raise ValueError(f"vector names unknown parameters: {sorted(unknown)}")
        flat_v = torch.cat(
            [
                vector[name].reshape(-1).to(p)
                if name in vector
                else torch.zeros_like(p).reshape(-1)
                for name, p in named
            ]
        )
    else:
        flat_v = vector.reshape(-1).to(params[0])
    if flat_v.numel() != sum(p.numel() for p in params):
        raise ValueError(
            f"vector has {flat_v.numel()} entries, the trainable parameters "
            f"{sum(p.numel() for p in params)}"
        )
    device = params[0].device
    grads = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    n, n_forward = len(inputs), 0
    try:
        for start in range(0, n, batch_size):
            x = inputs[start : start + batch_size].to(device)
            y = targets[start : start + batch_size].to(device)
            loss = loss_fn(model(x), y) * (len(x) / n)
            parts = torch.autograd.grad(loss, params, allow_unused=True)
            n_forward += 1
            for acc, part in zip(grads, parts, strict=True):
                if part is not None:
                    acc += part
    finally:
        model.train(was_training)
    g = torch.cat([gr.reshape(-1) for gr in grads]).double()
    v = flat_v.double()
    g_norm, v_norm = float(g.norm()), float(v.norm())
    cosine = float(g @ v) / (g_norm * v_norm) if g_norm > 0 and v_norm > 0 else float("nan")
    return GradientAlignment(cosine, g_norm, n, n_forward)


@dataclass(frozen=True)
class Spike:
    """A loss spike: the step, its loss, and the baseline it was compared with."""

    step: int
    loss: float
    median: float
    mad: float
    threshold: float


class SpikeDetector:
    """Online detector of train-loss spikes against a robust running baseline.

    The rule, at a step with loss ``L``: let ``H`` be the last ``window`` finite losses before it,
    ``med = median(H)`` and ``mad = 1.4826 * median(|H - med|)`` (the MAD scaled to a normal
    standard deviation).  Once ``H`` holds ``min_history`` losses, the step is *above* when

        L > threshold = max(med + c * mad, (1 + r) * med)      or L is not finite,

    i.e. the jump is large both against the noise and relatively.  A spike is emitted on the first
    step of each run of consecutive above steps (one event per spike).  Every finite loss then
    joins ``H``, so a lasting jump becomes the new baseline after ``window / 2`` steps.
    Rosenfeld & Risteski (2023) trace such spikes to opposing-signal groups.
    """

    def __init__(self, window: int = 50, c: float = 6.0, r: float = 0.5, min_history: int = 10):
        if not 1 <= min_history <= window:
            raise ValueError("need 1 <= min_history <= window")
        self.window, self.c, self.r, self.min_history = window, c, r, min_history
        self._history: deque[float] = deque(maxlen=window)
        self._above = False

    def update(self, step: int, loss: float) -> Spike | None:
        """Feed the loss of one step; return a :class:`Spike` if a spike starts here."""
        loss = float(loss)
        spike, above = None, False
        if len(self._history) >= self.min_history:
            h = np.fromiter(self._history, dtype=np.float64)
            med = float(np.median(h))
            mad = _MAD_TO_SIGMA * float(np.median(np.abs(h - med)))
            threshold = max(med + self.c * mad, (1.0 + self.r) * med)
            above = not np.isfinite(loss) or loss > threshold
            if above and not self._above:
                spike = Spike(step, loss, med, mad, threshold)
        self._above = above
        if np.isfinite(loss):
            self._history.append(loss)
        return spike


def losses_to_bytes(losses: np.ndarray | torch.Tensor) -> bytes:
    """Per-example losses as little-endian float32 bytes (4 bytes per example)."""
    if isinstance(losses, torch.Tensor):
        losses = losses.detach().cpu().numpy()
    return np.ascontiguousarray(losses, dtype="<f4").reshape(-1).tobytes()


def losses_from_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`losses_to_bytes`: a writable native float32 array."""
    if len(data) % 4:
        raise ValueError(f"{len(data)} bytes is not a whole number of float32 values")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def example_loss_from_bytes(data: bytes, index: int) -> float:
    """One example's loss from :func:`losses_to_bytes` output, without decoding the rest."""
    if not 0 <= index < len(data) // 4:
        raise IndexError(f"index {index} out of range for {len(data) // 4} losses")
    return float(np.frombuffer(data, dtype="<f4", count=1, offset=4 * index)[0])
