"""Neural collapse (NC1–NC4) of the features at any layer, streamed in float64.

Papyan, Han & Donoho (2020), "Prevalence of neural collapse during the terminal phase of deep
learning training", PNAS 117(40): in the terminal phase of training the last-layer features
collapse to their class means (NC1), the centred means form a simplex equiangular tight frame
(NC2), the classifier rows align with them (NC3) and the network decides like a nearest class
centre classifier (NC4).  With features ``h_i`` of class ``y_i``, ``n_c`` examples of class ``c``,
``N`` examples and ``C`` classes present:

* ``μ_c = (1/n_c) Σ_{y_i=c} h_i``; ``μ_G = (1/N) Σ_i h_i`` (default, valid for imbalanced classes)
  or ``μ_G = (1/C) Σ_c μ_c`` (``global_mean="classes"``); ``M`` has rows ``μ_c − μ_G``.
* ``Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ``, ``Σ_B = (1/C) MᵀM`` and
  ``NC1 = Tr(Σ_W Σ_B^†) / C``.  With ``M = U S Vᵀ``, ``Σ_B^† = C V S⁻² Vᵀ``, so
  ``NC1 = Σ_k v_kᵀ Σ_W v_k / s_k²`` over the nonzero singular values (the pseudo-inverse).
* NC2: equinorm ``= std_c ‖M_c‖ / mean_c ‖M_c‖`` (and of the classifier rows ``‖w_c‖``);
  equiangularity ``= std_{c≠c'} cos(M_c, M_c')`` and ``max_angle = mean_{c≠c'} |cos + 1/(C−1)|``.
* ``NC3 = ‖W/‖W‖_F − M/‖M‖_F‖²_F`` with ``W`` the ``C × d`` classifier weight.
* NC4: the fraction of examples where the network's prediction ``argmax_c (W h + b)_c`` differs
  from the nearest class centre ``argmin_c ‖h − μ_c‖``.

Streaming uses two passes over the data so that memory is ``O(C·d + d²)`` and never ``O(N·d)``:
pass 1 accumulates class sums and counts; pass 2 accumulates the within-class scatter around the
now known class means (exact centring, no cancellation between large second moments, which
matters precisely when NC1 is small) together with the NC4 disagreements, which need the final
means anyway.  Keeping one ``d × d`` second moment per class (``O(C·d²)``: 210 MB for ``C = 100``,
``d = 512``) would save one pass but not NC4's, so it is not offered.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from worker.probes.linalg import evaluation_mode

__all__ = [
    "CollapseAccumulator",
    "NeuralCollapse",
    "Projection",
    "collect",
    "neural_collapse",
    "terminal_phase_drop",
]

GlobalMean = Literal["samples", "classes"]


@dataclass(frozen=True)
class Projection:
    """Features projected on the top-2 principal directions of the centred class means.

    Attributes:
        points: ``(n, 2)`` projections ``(h − μ_G) · axes``, at most ``max_points_per_class``
            per class (the first ones of each class seen in the second pass).
        labels: ``(n,)`` class of each point.
        means: ``(C, 2)`` projected class means, rows in the order of ``NeuralCollapse.classes``.
        axes: ``(2, d)`` orthonormal directions (zero rows where ``M`` has rank below 2).
    """

    points: np.ndarray
    labels: np.ndarray
    means: np.ndarray
    axes: np.ndarray


@dataclass(frozen=True)
class NeuralCollapse:
    """NC1–NC4 of one feature layer (definitions in the module docstring).

    Attributes:
        nc1: ``Tr(Σ_W Σ_B^†)/C``.
        equinorm: std/mean of the norms of the centred class means.
        equiangular: std of the cosines between distinct centred class means.
        max_angle: mean ``|cos + 1/(C−1)|`` over distinct pairs (0 for a simplex ETF).
        nc3: classifier–means duality, ``None`` without a classifier.
        nc4: disagreement with the nearest class centre, ``None`` without predictions.
        equinorm_classifier: std/mean of the classifier row norms, ``None`` without one.
        equiangular_classifier: std of the cosines between classifier rows, ``None`` without one.
        cosines: ``(C, C)`` cosines between centred class means (for the dashboard heatmap).
        classes: the ``C`` class indices present, indexing the rows above.
        counts: ``(C,)`` examples per present class.
        projection: 2-D projection of a bounded sample of the features.
        examples: examples seen in each pass (``N``).
        forward_passes: model forward calls spent (0 when features were given).
    """

    nc1: float
    equinorm: float
    equiangular: float
    max_angle: float
    nc3: float | None
    nc4: float | None
    equinorm_classifier: float | None
    equiangular_classifier: float | None
    cosines: np.ndarray
    classes: np.ndarray
    counts: np.ndarray
    projection: Projection
    examples: int
    forward_passes: int


class CollapseAccumulator:
    """Two-pass streaming accumulator of the neural-collapse statistics in float64.

    Feed every batch to :meth:`add_means`, then the same examples (in any order and batching) to
    :meth:`add_scatter`, then call :meth:`result`.  State: class sums ``C × d``, counts, one
    ``d × d`` within-class scatter and at most ``C · max_points_per_class`` projected points,
    on the device of the first batch.  The second pass re-accumulates the class sums and refuses
    a result if it saw other examples than the first.

    Args:
        n_classes: number of classes; labels must lie in ``[0, n_classes)``.
        classifier_weight: ``(n_classes, d)`` classifier for NC2/NC3, and NC4 when
            :meth:`add_scatter` gets no predictions.
        classifier_bias: ``(n_classes,)`` bias of that classifier.
        global_mean: ``"samples"`` (mean of all features) or ``"classes"`` (mean of class means).
        max_points_per_class: points per class kept for the 2-D projection.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        classifier_weight: Tensor | None = None,
        classifier_bias: Tensor | None = None,
        global_mean: GlobalMean = "samples",
        max_points_per_class: int = 50,
    ) -> None:
        if global_mean not in ("samples", "classes"):
            raise ValueError(f"global_mean must be 'samples' or 'classes', not {global_mean!r}")
        self.n_classes = n_classes
        self.global_mean: GlobalMean = global_mean
        self.max_points_per_class = max_points_per_class
        self._weight = None if classifier_weight is None else classifier_weight.detach()
        self._bias = None if classifier_bias is None else classifier_bias.detach()
        self._sums: Tensor | None = None
        self._counts: Tensor | None = None
        self._second: dict[str, Tensor] | None = None
        self._points: list[Tensor] = []
        self._point_labels: list[Tensor] = []
        self._disagreements = 0
        self._predicted = 0

    def add_means(self, features: Tensor, labels: Tensor) -> None:
        """Pass 1: add a batch to the class sums and counts."""
        if self._second is not None:
            raise RuntimeError("add_means after add_scatter: the first pass is over")
        h, y = self._prepare(features, labels)
        if self._sums is None:
            self._sums = h.new_zeros(self.n_classes, h.shape[1])
            self._counts = torch.zeros(self.n_classes, dtype=torch.long, device=h.device)
        self._sums.index_add_(0, y, h)
        self._counts += torch.bincount(y, minlength=self.n_classes)

    def add_scatter(
        self, features: Tensor, labels: Tensor, predictions: Tensor | None = None
    ) -> None:
        """Pass 2: add a batch to the within-class scatter, NC4 and the projection sample.

        Args:
            features: ``(B, …)`` features, flattened to ``(B, d)``.
            labels: ``(B,)`` integer classes.
            predictions: ``(B,)`` the network's predicted classes; computed from the classifier
                as ``argmax(W h + b)`` when omitted and a classifier was given.
        """
        if self._sums is None:
            raise RuntimeError("add_scatter before any add_means")
        st = self._second if self._second is not None else self._finish_means()
        h, y = self._prepare(features, labels)
        centred = h - st["means"][y]
        st["scatter"].addmm_(centred.T, centred)
        st["sums"].index_add_(0, y, h)
        st["counts"] += torch.bincount(y, minlength=self.n_classes)
        if predictions is None and self._weight is not None:
            bias = 0.0 if self._bias is None else self._bias.to(h)
            predictions = (h @ self._weight.to(h).T + bias).argmax(1)
        if predictions is not None:
            present = st["present"]
            mu = st["means"][present]
            distance = (mu * mu).sum(1) - 2.0 * h @ mu.T
            nearest = present[distance.argmin(1)]
            self._disagreements += int((nearest != predictions.to(y.device)).sum())
            self._predicted += len(y)
        self._keep_points(h, y, st)

    def result(self, *, forward_passes: int = 0) -> NeuralCollapse:
        """NC1–NC4 from both passes; ``forward_passes`` is the cost to report."""
        st = self._second
        if st is None:
            raise RuntimeError("result before add_scatter: the second pass is missing")
        if not torch.equal(st["counts"], self._counts):
            raise ValueError("the second pass saw other examples than the first")
        drift = torch.linalg.norm(st["sums"] - self._sums) / torch.linalg.norm(self._sums)
        if drift > 1e-5:
            raise ValueError(f"the second pass saw other features than the first ({drift:.1e})")
        present, centred = st["present"], st["centred"]
        n = int(self._counts.sum())
        sigma_w = st["scatter"] / n
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        keep = s > s.max() * max(centred.shape) * torch.finfo(s.dtype).eps
        v, s = vh[keep], s[keep]
        nc1 = float((((v @ sigma_w) * v).sum(1) / s**2).sum())
        equinorm, equiangular, max_angle, cosines = _frame_shape(centred)
        nc3 = equinorm_w = equiangular_w = None
        if self._weight is not None:
            w = self._weight.to(torch.float64)[present]
            equinorm_w, equiangular_w, _, _ = _frame_shape(w)
            nc3 = float(torch.linalg.norm(w / w.norm() - centred / centred.norm()) ** 2)
        points = torch.cat(self._points) if self._points else centred.new_zeros(0, 2)
        labels = torch.cat(self._point_labels) if self._point_labels else present[:0]
        return NeuralCollapse(
            nc1=nc1,
            equinorm=equinorm,
            equiangular=equiangular,
            max_angle=max_angle,
            nc3=nc3,
            nc4=self._disagreements / self._predicted if self._predicted else None,
            equinorm_classifier=equinorm_w,
            equiangular_classifier=equiangular_w,
            cosines=cosines.cpu().numpy(),
            classes=present.cpu().numpy(),
            counts=self._counts[present].cpu().numpy(),
            projection=Projection(
                points=points.cpu().numpy().astype(np.float32),
                labels=labels.cpu().numpy(),
                means=(centred @ st["axes"].T).cpu().numpy(),
                axes=st["axes"].cpu().numpy(),
            ),
            examples=n,
            forward_passes=forward_passes,
        )

    def _prepare(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        h = features.detach().flatten(1).to(torch.float64)
        y = labels.detach().to(device=h.device, dtype=torch.long).flatten()
        if len(y) != len(h):
            raise ValueError(f"{len(h)} feature rows but {len(y)} labels")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise ValueError(f"labels must lie in [0, {self.n_classes})")
        if self._sums is not None and h.shape[1] != self._sums.shape[1]:
            raise ValueError(f"feature dimension {h.shape[1]} != {self._sums.shape[1]}")
        return h, y

    def _finish_means(self) -> dict[str, Tensor]:
        present = torch.nonzero(self._counts).flatten()
        if len(present) < 2:
            raise ValueError("neural collapse needs at least two classes with examples")
        means = self._sums / self._counts.clamp(min=1).unsqueeze(1)
        if self.global_mean == "samples":
            mu_g = self._sums.sum(0) / self._counts.sum()
        else:
            mu_g = means[present].mean(0)
        centred = means[present] - mu_g
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        axes = centred.new_zeros(2, centred.shape[1])
        axes[: min(2, len(vh))] = vh[:2]
        axes *= torch.where(axes.gather(1, axes.abs().argmax(1, keepdim=True)) < 0, -1.0, 1.0)
        d = centred.shape[1]
        self._second = {
            "means": means,
            "mu_g": mu_g,
            "present": present,
            "centred": centred,
            "axes": axes,
            "scatter": centred.new_zeros(d, d),
            "sums": torch.zeros_like(self._sums),
            "counts": torch.zeros_like(self._counts),
            "kept": torch.zeros_like(self._counts),
        }
        return self._second

    def _keep_points(self, h: Tensor, y: Tensor, st: dict[str, Tensor]) -> None:
        if int(st["kept"][st["present"]].min()) >= self.max_points_per_class or not len(y):
            return
        order = torch.argsort(y, stable=True)
        ys = y[order]
        rank = torch.arange(len(ys), device=ys.device) - torch.searchsorted(ys, ys)
        chosen = order[rank < self.max_points_per_class - st["kept"][ys]]
        st["kept"] += torch.bincount(y[chosen], minlength=self.n_classes)
        self._points.append((h[chosen] - st["mu_g"]) @ st["axes"].T)
        self._point_labels.append(y[chosen])


def _frame_shape(rows: Tensor) -> tuple[float, float, float, Tensor]:
    """Equinorm, equiangularity, mean ``|cos + 1/(C−1)|`` and the cosine matrix of ``rows``."""
    norms = rows.norm(dim=1)
    cosines = (rows / norms.unsqueeze(1)) @ (rows / norms.unsqueeze(1)).T
    c = len(rows)
    off = cosines[~torch.eye(c, dtype=torch.bool, device=rows.device)]
    equinorm = float(norms.std(correction=0) / norms.mean())
    return equinorm, float(off.std(correction=0)), float((off + 1 / (c - 1)).abs().mean()), cosines


def neural_collapse(
    features: Tensor,
    labels: Tensor,
    classifier_weight: Tensor | None = None,
    classifier_bias: Tensor | None = None,
    *,
    n_classes: int | None = None,
    global_mean: GlobalMean = "samples",
    max_points_per_class: int = 50,
) -> NeuralCollapse:
    """NC1–NC4 of features held in memory (see the module docstring for the formulas).

    Args:
        features: ``(N, d)`` features (or ``(N, …)``, flattened).
        labels: ``(N,)`` integer classes.
        classifier_weight: ``(C, d)`` last-layer weight; enables NC3, NC4 and the classifier NC2.
        classifier_bias: ``(C,)`` last-layer bias used for the NC4 predictions.
        n_classes: defaults to the classifier's rows, else ``max(labels) + 1``.
        global_mean: ``"samples"`` (default) or ``"classes"`` (mean of the class means).
        max_points_per_class: points per class in the 2-D projection.

    Returns:
        The :class:`NeuralCollapse` of these features, computed in float64.
    """
    if n_classes is None:
        n_classes = (
            len(classifier_weight) if classifier_weight is not None else int(labels.max()) + 1
        )
    acc = CollapseAccumulator(
        n_classes,
        classifier_weight=classifier_weight,
        classifier_bias=classifier_bias,
        global_mean=global_mean,
        max_points_per_class=max_points_per_class,
    )
    acc.add_means(features, labels)
    acc.add_scatter(features, labels)
    return acc.result()


def collect(
    model: nn.Module,
    data: Iterable[tuple[Tensor, Tensor]],
    *,
    layers: str | Sequence[str] | None = None,
    max_examples: int | None = None,
    n_classes: int | None = None,
    global_mean: GlobalMean = "samples",
    max_points_per_class: int = 50,
) -> dict[str, NeuralCollapse]:
    """Neural collapse of the features entering named modules, streamed over ``data``.

    Forward hooks capture the *input* of each named module (default: the last ``nn.Linear``, the
    penultimate features of Papyan et al.); listing several modules gives NC1 across depth from
    the same forward passes.  Runs in eval mode under ``no_grad`` on the model's device, restores
    every module's mode, and goes over the first ``max_examples`` examples twice (see the module
    docstring), so ``data`` must yield the same examples on each iteration.  NC4 compares the
    nearest class centre with the model's own prediction ``argmax model(x)``; NC3 and the
    classifier NC2 are computed where the named module is an ``nn.Linear`` with ``n_classes``
    outputs.

    Args:
        model: a classifier returning ``(B, n_classes)`` logits.
        data: an iterable of ``(inputs, labels)`` batches, iterated twice.
        layers: module name(s) from ``model.named_modules()``; ``None``: the last ``nn.Linear``.
        max_examples: cap on examples per pass; ``None`` for all.
        n_classes: defaults to the output size of the last ``nn.Linear``.
        global_mean: as in :func:`neural_collapse`.
        max_points_per_class: points per class in the 2-D projection.

    Returns:
        One :class:`NeuralCollapse` per layer name, each stating the forward calls of both passes.
    """
    modules = dict(model.named_modules())
    linears = [name for name, m in modules.items() if isinstance(m, nn.Linear)]
    if not linears and (layers is None or n_classes is None):
        raise ValueError("the model has no nn.Linear: name the layers and n_classes")
    names = [linears[-1]] if layers is None else [layers] if isinstance(layers, str) else layers
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise ValueError(f"no modules named {unknown}")
    n_classes = n_classes or modules[linears[-1]].out_features
    heads = {
        n: modules[n]
        for n in names
        if isinstance(modules[n], nn.Linear) and modules[n].out_features == n_classes
    }
    accumulators = {
        name: CollapseAccumulator(
            n_classes,
            classifier_weight=heads[name].weight if name in heads else None,
            classifier_bias=heads[name].bias if name in heads else None,
            global_mean=global_mean,
            max_points_per_class=max_points_per_class,
        )
        for name in names
    }
    captured: dict[str, Tensor] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda _m, args, _out, name=name: captured.__setitem__(name, args[0])
        )
        for name in names
    ]
    device = next(model.parameters()).device
    calls = 0
    try:
        with evaluation_mode(model), torch.no_grad():
            for second in (False, True):
                for inputs, labels in _first_examples(data, max_examples):
                    captured.clear()
                    outputs = model(inputs.to(device))
                    calls += 1
                    labels = labels.to(device)
                    shaped = outputs.ndim == 2 and outputs.shape[1] == n_classes
                    predictions = outputs.argmax(1) if shaped else None
                    for name, acc in accumulators.items():
                        if second:
                            acc.add_scatter(captured[name], labels, predictions)
                        else:
                            acc.add_means(captured[name], labels)
    finally:
        for handle in handles:
            handle.remove()
    return {name: acc.result(forward_passes=calls) for name, acc in accumulators.items()}


def _first_examples(
    data: Iterable[tuple[Tensor, Tensor]], max_examples: int | None
) -> Iterator[tuple[Tensor, Tensor]]:
    """The batches of ``data`` up to ``max_examples`` examples, the last one cut to fit."""
    left = sys.maxsize if max_examples is None else max_examples
    for inputs, labels in data:
        if left <= 0:
            return
        inputs, labels = inputs[:left], labels[:left]
        left -= len(labels)
        yield inputs, labels


def terminal_phase_drop(
    train_acc: Mapping[int, float], nc1: Mapping[int, float]
) -> tuple[int, int, float]:
    """How far NC1 falls in the terminal phase: ``(first, last, nc1[first] / nc1[last])``.

    ``first`` is the first step (in step order) where the train accuracy is exactly 1 and NC1
    was measured; ``last`` is the last step with NC1.  For the drop to start at the end of the
    first epoch with 100 % train accuracy, log the full-train-set accuracy and run the probe at
    every epoch's end (minibatches: every ``len(train) // batch_size`` steps, the loop's epoch;
    full batch: every step is an epoch).  Sparser logging starts the drop at the first logged
    step at 100 % instead, no earlier than that epoch.

    Raises:
        ValueError: no step has both NC1 and a train accuracy of 1.
    """
    fitted = [s for s in sorted(nc1) if train_acc.get(s) == 1.0]
    if not fitted:
        raise ValueError("no step with NC1 reached 100 % train accuracy")
    last = max(nc1)
    return fitted[0], last, nc1[fitted[0]] / nc1[last]
