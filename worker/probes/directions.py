r"""Directions in weight space for loss-landscape plots.

A loss surface is the loss on a low-dimensional slice through the current weights
:math:`\theta^*`,

.. math::
    f(\alpha, \beta) = L(\theta^* + \alpha\,\delta + \beta\,\eta),

and what it shows depends entirely on the directions :math:`\delta, \eta`. This module makes them,
each as a dict of parameter-shaped tensors keyed like ``model.named_parameters()``:

* :func:`random_direction` -- a Gaussian direction with *filter normalization* (Li, Xu, Taylor,
  Studer & Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets", NeurIPS): every filter
  of the direction is rescaled to the norm of the same filter of the weights, so that the scale
  invariance of ReLU networks does not make small-weight networks look sharp;
* :func:`hessian_directions` -- the top Hessian eigenvectors (unit norm; along them the surface
  curvature at the centre is the eigenvalue), from the Hessian probe;
* :func:`trajectory_pca` -- the top principal components of the optimizer's trajectory (Li et al.
  2018, section 7), with the trajectory projected onto them.

Sign convention: an eigenvector or principal component is defined up to sign; both are returned
with their largest-magnitude entry positive, so the same weights always give the same picture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from worker.probes import hessian

__all__ = [
    "Direction",
    "HessianDirections",
    "TrajectoryPCA",
    "hessian_directions",
    "normalize_direction",
    "random_direction",
    "trajectory_pca",
]

Direction = dict[str, Tensor]
Normalization = Literal["filter", "layer", "none"]
BiasRule = Literal["zero", "weights", "normalize"]
Checkpoint = Mapping[str, Tensor] | Tensor

_EPS = 1e-10  # Li et al.'s guard against a zero-norm filter of the random direction


def parameters_of(model: nn.Module) -> dict[str, Tensor]:
    """The model's parameters, detached, keyed and ordered like ``named_parameters()``."""
    return {name: p.detach() for name, p in model.named_parameters()}


def as_direction(
    value: Mapping[str, Tensor] | Tensor, reference: Mapping[str, Tensor]
) -> Direction:
    """Bring an explicit direction to the reference's keys, shapes, device and dtype.

    ``value`` is a dict (missing entries are zero: those parameters do not move) or a flat vector
    laid out over ``reference`` in order.
    """
    if isinstance(value, Tensor):
        numels = [t.numel() for t in reference.values()]
        if value.dim() != 1 or value.numel() != sum(numels):
            raise ValueError(f"a flat direction needs {sum(numels)} entries, got {value.shape}")
        parts = value.split(numels)
        return {
            n: c.view(t.shape).to(t.device, t.dtype)
            for (n, t), c in zip(reference.items(), parts, strict=True)
        }
    unknown = sorted(set(value) - set(reference))
    if unknown:
        raise ValueError(f"direction has entries that are not parameters: {unknown[:5]}")
    out: Direction = {}
    for name, ref in reference.items():
        if name not in value:
            out[name] = torch.zeros_like(ref)
            continue
        entry = torch.as_tensor(value[name])
        if entry.shape != ref.shape:
            raise ValueError(f"direction {name!r} has shape {tuple(entry.shape)}, not {ref.shape}")
        out[name] = entry.detach().to(ref.device, ref.dtype)
    return out


def normalize_direction(
    direction: Mapping[str, Tensor],
    weights: Mapping[str, Tensor],
    normalization: Normalization = "filter",
    bias_bn: BiasRule = "zero",
) -> Direction:
    r"""Rescale a direction to the weights, filter by filter (Li et al. 2018, eq. 1).

    For a parameter with two or more dimensions, a *filter* is one slice along dimension 0 (an
    output channel of a convolution, an output neuron -- a row -- of a linear layer):

    .. math::
        d_{i,j} \leftarrow \frac{d_{i,j}}{\lVert d_{i,j}\rVert + \epsilon}\,
        \lVert \theta_{i,j} \rVert
        \qquad (\text{filter } j \text{ of layer } i,\ \epsilon = 10^{-10}).

    ``normalization="layer"`` does the same with a whole tensor as the unit and ``"none"`` leaves
    those entries as they are. Parameters with at most one dimension -- biases and the scale and
    shift of BatchNorm / LayerNorm -- follow ``bias_bn``: ``"zero"`` leaves them out of the
    direction (Li et al.'s default, ``ignore='biasbn'``), ``"weights"`` sets the direction to the
    weights themselves (their code without ``ignore``), ``"normalize"`` rescales the tensor as a
    whole to the weights' norm.

    Args:
        direction: parameter-shaped tensors (any scale), keyed like ``weights``.
        weights: the weights the direction is drawn around.
        normalization: ``"filter"``, ``"layer"`` or ``"none"``.
        bias_bn: rule for parameters with at most one dimension.

    Returns:
        A new dict; the inputs are not modified.
    """
    if normalization not in ("filter", "layer", "none"):
        raise ValueError(f"unknown normalization {normalization!r}")
    if bias_bn not in ("zero", "weights", "normalize"):
        raise ValueError(f"unknown bias_bn rule {bias_bn!r}")
    out: Direction = {}
    for name, w in weights.items():
        d = direction[name].to(w.device, w.dtype)
        if w.dim() <= 1:
            if bias_bn == "zero":
                d = torch.zeros_like(w)
            elif bias_bn == "weights":
                d = w.clone()
            else:
                d = d * (w.norm() / (d.norm() + _EPS))
        elif normalization == "filter":
            d_rows, w_rows = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
            scale = w_rows.norm(dim=1, keepdim=True) / (d_rows.norm(dim=1, keepdim=True) + _EPS)
            d = (d_rows * scale).view(w.shape)
        elif normalization == "layer":
            d = d * (w.norm() / (d.norm() + _EPS))
        else:
            d = d.clone()
        out[name] = d
    return out


def random_direction(
    model: nn.Module,
    seed: int = 0,
    normalization: Normalization = "filter",
    bias_bn: BiasRule = "zero",
    *,
    generator: torch.Generator | None = None,
) -> Direction:
    r"""A Gaussian direction :math:`d \sim \mathcal{N}(0, I)` rescaled to the weights.

    The rescaling is :func:`normalize_direction`'s. The draw happens on the CPU from
    ``torch.Generator().manual_seed(seed)`` (or from ``generator``, which then advances),
    parameter by parameter in ``named_parameters()`` order, in float32, and is then moved to the
    model's device and dtype: the same seed gives the same direction on any device.

    Args:
        model: the network; its current weights set the filter norms.
        seed: seed of the draw (ignored when ``generator`` is given).
        normalization: see :func:`normalize_direction`.
        bias_bn: see :func:`normalize_direction`.
        generator: a CPU generator to draw from instead of a fresh seeded one.
    """
    weights = parameters_of(model)
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    raw = {n: torch.randn(w.shape, generator=gen, dtype=torch.float32) for n, w in weights.items()}
    return normalize_direction(raw, weights, normalization, bias_bn)


def _fix_sign(direction: Direction) -> Direction:
    """Flip the direction so that its largest-magnitude entry is positive."""
    best, sign = -1.0, 1.0
    for t in direction.values():
        if t.numel():
            i = int(t.abs().argmax())
            value = float(t.reshape(-1)[i])
            if abs(value) > best:
                best, sign = abs(value), (1.0 if value >= 0 else -1.0)
    return {n: t * sign for n, t in direction.items()} if sign < 0 else direction


@dataclass(frozen=True, eq=False)
class HessianDirections:
    """The top Hessian eigenvectors as directions.

    Attributes:
        directions: unit-norm eigenvectors (parameter dicts), eigenvalues descending.
        eigenvalues: the matching eigenvalues.
        n_hvp: Hessian-vector products spent.
    """

    directions: tuple[Direction, ...]
    eigenvalues: np.ndarray
    n_hvp: int


def hessian_directions(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Any], Tensor],
    data: Iterable[tuple[Any, Any]],
    k: int = 2,
    **kwargs: Any,
) -> HessianDirections:
    r"""The top-``k`` Hessian eigenvectors :math:`H v_i = \lambda_i v_i`, as directions.

    Computed by :func:`worker.probes.hessian.top_eigenvalues` (Lanczos on Hessian-vector products,
    eval mode). Along a unit eigenvector the second derivative of the surface at the centre is
    :math:`\lambda_i`, so these axes are not normalized further: distances are in weight units.

    Args:
        model: the network.
        loss_fn: ``loss_fn(outputs, targets)`` -> batch mean loss.
        data: iterable of ``(inputs, targets)`` batches.
        k: number of eigenvectors (2 for a surface).
        **kwargs: passed on to ``top_eigenvalues`` (``tol``, ``max_iter``, ...).
    """
    result = hessian.top_eigenvalues(model, loss_fn, data, k=k, **kwargs)
    weights = parameters_of(model)
    vectors = [as_direction(result.eigenvector(i), weights) for i in range(k)]
    values = result.eigenvalues.detach().cpu().numpy().astype(np.float64)
    return HessianDirections(
        directions=tuple(_fix_sign(v) for v in vectors),
        eigenvalues=values[:k],
        n_hvp=int(result.n_hvp),
    )


@dataclass(frozen=True, eq=False)
class TrajectoryPCA:
    r"""Principal directions of a weight trajectory and the trajectory in their coordinates.

    Attributes:
        directions: ``k`` orthonormal directions (parameter dicts), by decreasing variance.
        explained_variance: fraction of the trajectory's variance along each direction,
            :math:`\lambda_i / \sum_j \lambda_j`, in [0, 1] and decreasing.
        coordinates: ``(T, k)`` array, :math:`\langle \theta_t - \theta^*, d_i \rangle` for each
            checkpoint ``t``: the trajectory drawn on a surface centred at :math:`\theta^*`.
        steps: the training step of each checkpoint (``0 .. T-1`` when not given).
    """

    directions: tuple[Direction, ...]
    explained_variance: np.ndarray
    coordinates: np.ndarray
    steps: np.ndarray


def _checkpoint_tensors(
    checkpoint: Checkpoint, reference: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    if isinstance(checkpoint, Tensor):
        return as_direction(checkpoint, reference)
    missing = [n for n in reference if n not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint lacks parameters {missing[:5]}")
    return {n: torch.as_tensor(checkpoint[n]).to(reference[n].device) for n in reference}


def trajectory_pca(
    model: nn.Module,
    checkpoints: Sequence[Checkpoint],
    k: int = 2,
    *,
    steps: Sequence[int] | None = None,
    since: int | None = None,
    center: Checkpoint | None = None,
) -> TrajectoryPCA:
    r"""PCA of the optimizer's path through weight space (Li et al. 2018, section 7).

    With the checkpoints :math:`\theta_0, \dots, \theta_{T-1}` and the centre :math:`\theta^*`
    (the model's current weights by default), the rows :math:`x_t = \theta_t - \theta^*` are
    centred on their mean :math:`\bar x` and the principal directions are

    .. math::
        d_i = \frac{\sum_t u_{ti}\,(x_t - \bar x)}{\sqrt{\lambda_i}}, \qquad
        G u_i = \lambda_i u_i, \quad G_{st} = \langle x_s - \bar x,\, x_t - \bar x \rangle,

    the Gram-matrix form of the SVD (a ``T x T`` eigenproblem in float64, accumulated parameter by
    parameter, so memory stays ``T`` times the largest parameter). The explained variance is
    :math:`\lambda_i / \operatorname{tr} G` and the trajectory's coordinates are
    :math:`\langle x_t, d_i \rangle`, i.e. relative to the centre, not to the mean: the path
    ends where the surface's origin is when :math:`\theta^*` is the last checkpoint.

    Args:
        model: gives the parameter names, shapes and (by default) the centre.
        checkpoints: state dicts (extra entries such as buffers are ignored) or flat parameter
            vectors in ``named_parameters()`` order.
        k: number of directions; needs at least ``k + 1`` checkpoints.
        steps: the training step of each checkpoint.
        since: keep only checkpoints with ``step >= since`` (needs ``steps``).
        center: the surface's centre, if not the model's current weights.
    """
    reference = parameters_of(model)
    step_array = np.arange(len(checkpoints)) if steps is None else np.asarray(steps)
    if len(step_array) != len(checkpoints):
        raise ValueError("steps and checkpoints differ in length")
    keep = np.ones(len(checkpoints), bool) if since is None else step_array >= since
    kept = [c for c, ok in zip(checkpoints, keep, strict=True) if ok]
    if len(kept) < k + 1:
        raise ValueError(f"{k} principal directions need at least {k + 1} checkpoints")
    theta_c = reference if center is None else _checkpoint_tensors(center, reference)
    tensors = [_checkpoint_tensors(c, reference) for c in kept]
    count = len(tensors)

    def rows(name: str) -> Tensor:
        x = torch.stack([t[name].reshape(-1) for t in tensors]).double()
        return x - theta_c[name].reshape(1, -1).double()

    gram = torch.zeros(count, count, dtype=torch.float64)
    for name in reference:
        x = rows(name)
        x = x - x.mean(0, keepdim=True)
        gram += (x @ x.T).cpu()
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    total = float(eigenvalues.clamp_min(0).sum())
    if total <= 0 or float(eigenvalues[k - 1]) <= 1e-12 * total:
        raise ValueError(f"the trajectory spans fewer than {k} dimensions")
    coefficients = eigenvectors[:, :k] / eigenvalues[:k].sqrt()
    directions: list[Direction] = [{} for _ in range(k)]
    coordinates = torch.zeros(count, k, dtype=torch.float64)
    for name, ref in reference.items():
        x = rows(name)
        d = (x - x.mean(0, keepdim=True)).T @ coefficients.to(x.device)
        coordinates += (x @ d).cpu()
        for i in range(k):
            directions[i][name] = d[:, i].view(ref.shape).to(ref.dtype)
    signs = []
    for i in range(k):
        fixed = _fix_sign(directions[i])
        signs.append(1.0 if fixed is directions[i] else -1.0)
        directions[i] = fixed
    coordinates = coordinates * torch.tensor(signs, dtype=torch.float64)
    return TrajectoryPCA(
        directions=tuple(directions),
        explained_variance=(eigenvalues[:k].clamp_min(0) / total).numpy(),
        coordinates=coordinates.numpy(),
        steps=step_array[keep],
    )
