r"""Many parameter points of one network evaluated at once: stacked weights under ``vmap``.

A point is :math:`\theta_p = \theta_0 + \sum_k c_{pk}\, d_k` for fixed directions :math:`d_k`.
For a chunk of points the parameters that move are stacked along a new leading dimension and one
:func:`torch.func.vmap` of :func:`torch.func.functional_call` runs the network on all of them;
parameters no direction moves are passed once, unstacked. A chunk of one point skips ``vmap``
(a plain ``functional_call``): on a CPU that is the faster way (see
``docs/benchmarks-landscape.md``). The loss is the size-weighted mean
:math:`L(\theta) = \sum_b (n_b/N)\, \ell(F(x_b;\theta), y_b)` and, for classification (2-D
outputs, integer targets), the accuracy.

BatchNorm: ``"running"`` evaluates in eval mode with the network's running statistics;
``"recompute"`` first re-estimates them per point: BatchNorm layers in train mode with
``momentum=None`` (a cumulative average over the batches, as
:func:`torch.optim.swa_utils.update_bn` does) update per-point copies of the statistics, then the
evaluation runs in eval mode with those copies. The network's own buffers are never written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from worker.probes.linalg import batch_size_of, evaluation_mode, to_device

__all__ = [
    "BNStats",
    "PointEvaluator",
    "channels_last_pooling",
    "evaluate_grid",
    "evaluate_points",
    "load_batches",
    "points_per_pass_for",
]

LossFn = Callable[[Tensor, Any], Tensor]
BNStats = Literal["running", "recompute"]

# Bytes of stacked parameters and activations per pass on an accelerator. On a CPU the default
# is one point per pass: there vmap's batched convolution (a grouped convolution) and pooling
# cost more per point than the plain kernels (bench/landscape_vs_loss_landscapes.py).
DEVICE_MEMORY_BUDGET = 2**30


def load_batches(data: Iterable[tuple[Any, Any]], device: torch.device, dtype: torch.dtype) -> list:
    """Read ``(inputs, targets)`` batches once onto ``device``, floating tensors as ``dtype``."""
    out = [(to_device(x, device, dtype), to_device(y, device, dtype)) for x, y in data]
    if not out:
        raise ValueError("data holds no batch")
    return out


def _args(inputs: Any) -> tuple:
    return tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)


def _is_classification(outputs: Any, targets: Any) -> bool:
    return (
        isinstance(outputs, Tensor)
        and isinstance(targets, Tensor)
        and outputs.dim() == 2
        and targets.dim() == 1
        and outputs.shape[0] == targets.shape[0]
        and not targets.is_floating_point()
        and not targets.is_complex()
    )


def _same(a: Tensor, b: Tensor) -> bool:
    """Whether two tensors are views of the same memory with the same layout."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


@contextmanager
def _bn_estimation(model: nn.Module) -> Iterator[None]:
    """Eval mode, but BatchNorm layers in train mode with a cumulative average (momentum None)."""
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [m.momentum for m in layers]
    with evaluation_mode(model):
        for m in layers:
            m.train()
            m.momentum = None
        try:
            yield
        finally:
            for m, momentum in zip(layers, saved, strict=True):
                m.momentum = momentum


class PointEvaluator:
    """Loss and accuracy at ``base + sum_k c[p, k] * directions[k]`` for many points ``p``.

    Construction runs one plain forward pass at ``base`` (on the largest batch) to tell a
    classification task from others and to measure the activation memory of one point. Calling
    the evaluator with a ``(P, K)`` coefficient tensor evaluates those ``P`` points in one
    ``vmap`` pass per batch (two with ``bn_stats="recompute"``). ``n_forward`` counts those
    passes, ``n_point_forwards`` the single-network passes over one batch they amount to.

    Args:
        model: the network (its parameters are not read; ``base`` replaces them).
        loss_fn: ``loss_fn(outputs, targets)`` -> batch mean loss, ``vmap``-able.
        batches: evaluation batches from :func:`load_batches`.
        base: parameter dict of the origin :math:`\theta_0`.
        directions: ``K`` parameter dicts (zero entries are not stacked).
        bn_stats: ``"running"`` or ``"recompute"``.
        bn_batches: batches for the BatchNorm re-estimation.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batches: list,
        base: Mapping[str, Tensor],
        directions: Sequence[Mapping[str, Tensor]],
        bn_stats: BNStats,
        bn_batches: list,
    ) -> None:
        self.model, self.loss_fn, self.batches = model, loss_fn, batches
        self.directions, self.bn_stats, self.bn_batches = directions, bn_stats, bn_batches
        self.n_examples = sum(batch_size_of(y) for _, y in batches)
        moving = {n for d in directions for n, t in d.items() if bool(t.any())}
        own = dict(model.named_parameters())
        self.moving = {n: t for n, t in base.items() if n in moving}
        # Unmoved parameters are swapped in only where they differ from the model's own tensors:
        # every swapped tensor costs functional_call a setattr on each call.
        self.fixed = {n: t for n, t in base.items() if n not in moving and not _same(t, own[n])}
        self.buffers = {n: b for n, b in model.named_buffers()}
        bn_layers = {n for n, m in model.named_modules() if isinstance(m, _BatchNorm)}
        self.bn_buffers = {
            n: b
            for n, b in self.buffers.items()
            if n.rpartition(".")[0] in bn_layers
            and n.rpartition(".")[2] in ("running_mean", "running_var")
        }
        self.n_forward = self.n_point_forwards = 0
        self.classification, self.activation_bytes = self._probe()

    def _probe(self) -> tuple[bool, int]:
        """One plain pass at the base point: the task kind and the activation memory per point."""
        sizes: list[int] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            for t in output if isinstance(output, tuple | list) else (output,):
                if isinstance(t, Tensor):
                    sizes.append(t.numel() * t.element_size())

        x, y = max(self.batches, key=lambda b: batch_size_of(b[1]))
        handles = [m.register_forward_hook(hook) for m in self.model.modules()]
        try:
            with torch.no_grad(), evaluation_mode(self.model):
                out = functional_call(self.model, (self.moving, self.fixed), _args(x))
        finally:
            for h in handles:
                h.remove()
        self.n_forward += 1
        self.n_point_forwards += 1
        return _is_classification(out, y), sum(sizes)

    def bytes_per_point(self) -> int:
        """Estimated memory of one point in a pass: moved parameters and twice the activations."""
        params = sum(t.numel() * t.element_size() for t in self.moving.values())
        return params + 2 * self.activation_bytes

    def _stack(self, coefficients: Tensor) -> dict[str, Tensor]:
        count = coefficients.shape[0]
        out = {}
        if count == 1:  # one point needs no vmap: plain tensors for a plain functional_call
            c = coefficients[0].tolist()
            for name, theta in self.moving.items():
                point = theta.clone()
                for k, d in enumerate(self.directions):
                    point.add_(d[name], alpha=c[k])
                out[name] = point
            return out
        for name, theta in self.moving.items():
            shape = (count,) + (1,) * theta.dim()
            stacked = theta.unsqueeze(0).expand(count, *theta.shape).clone()
            for k, d in enumerate(self.directions):
                stacked.add_(coefficients[:, k].view(shape).to(theta.dtype) * d[name])
            out[name] = stacked
        return out

    def _point(self, moving: dict, bn: dict, counters: dict, inputs: Any, targets: Any) -> tuple:
        out = functional_call(self.model, (moving, self.fixed, {**counters, **bn}), _args(inputs))
        loss = self.loss_fn(out, targets)
        if self.classification:
            return loss, (out.argmax(-1) == targets).sum()
        return loss, torch.zeros((), device=loss.device)

    def _estimate_bn(self, moving: dict, count: int) -> dict[str, Tensor]:
        bn = {
            n: (torch.zeros if n.endswith("running_mean") else torch.ones)(
                (count, *b.shape), dtype=b.dtype, device=b.device
            )
            for n, b in self.bn_buffers.items()
        }
        counters = {
            n: torch.zeros_like(b)
            for n, b in self.buffers.items()
            if n.endswith("num_batches_tracked")
        }
        run = self._point if count == 1 else vmap(self._point, in_dims=(0, 0, None, None, None))
        if count == 1:
            bn = {n: b[0] for n, b in bn.items()}
        with _bn_estimation(self.model):
            for x, y in self.bn_batches:
                run(moving, bn, counters, x, y)
                self.n_forward += 1
                self.n_point_forwards += count
        return bn

    def __call__(self, coefficients: Tensor) -> tuple[Tensor, Tensor]:
        """Size-weighted mean loss and accuracy at each row of ``coefficients``.

        Call it inside :func:`~worker.probes.linalg.evaluation_mode` (as :func:`evaluate_grid`
        does): it does not set the modules' train/eval flags itself.
        """
        count = coefficients.shape[0]
        moving = self._stack(coefficients)
        bn = self._estimate_bn(moving, count) if self.bn_stats == "recompute" else {}
        device = coefficients.device
        loss = torch.zeros(count, dtype=torch.float64, device=device)
        correct = torch.zeros(count, dtype=torch.float64, device=device)
        run = self._point if count == 1 else vmap(self._point, in_dims=(0, 0, None, None, None))
        for x, y in self.batches:
            batch_loss, batch_correct = run(moving, bn, {}, x, y)
            loss += batch_loss.double() * (batch_size_of(y) / self.n_examples)
            correct += batch_correct.double()
            self.n_forward += 1
            self.n_point_forwards += count
        return loss, correct / self.n_examples


@contextmanager
def channels_last_pooling(model: nn.Module) -> Iterator[None]:
    """CPU, one point per pass: the inputs of ``MaxPool2d`` layers in channels-last memory format.

    PyTorch's CPU max-pooling kernel is several times slower on contiguous (NCHW) inputs than on
    channels-last ones for small feature maps (1.20 against 0.17 ms for 512 x 8 x 8 x 8, one
    thread; ``bench/landscape_cpu_variants.py``). Pooling takes the maximum of the same numbers
    in either layout, so the values are unchanged; the pre-hooks are removed on exit.
    """

    def to_channels_last(_module: nn.Module, inputs: tuple) -> tuple | None:
        x = inputs[0] if inputs else None
        if isinstance(x, Tensor) and x.dim() == 4 and x.device.type == "cpu":
            return (x.contiguous(memory_format=torch.channels_last), *inputs[1:])
        return None

    handles = [
        m.register_forward_pre_hook(to_channels_last)
        for m in model.modules()
        if isinstance(m, nn.MaxPool2d)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _grid(coords: np.ndarray, n_axes: int) -> np.ndarray:
    if n_axes == 1:
        return coords[:, None]
    a, b = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1)


def points_per_pass_for(
    evaluator: PointEvaluator,
    total: int,
    memory_budget: int | None,
    points_per_pass: int | None,
    device: torch.device,
) -> int:
    """Points per pass: ``points_per_pass``, else ``memory_budget`` over the evaluator's bytes
    per point, else one point on a CPU and 1 GiB's worth on an accelerator; at most ``total``."""
    if points_per_pass is not None:
        per_pass = points_per_pass
    elif memory_budget is None and device.type == "cpu":
        per_pass = 1
    else:
        budget = DEVICE_MEMORY_BUDGET if memory_budget is None else memory_budget
        per_pass = budget // max(1, evaluator.bytes_per_point())
    return max(1, min(int(per_pass), total))


def evaluate_points(
    evaluator: PointEvaluator, points: np.ndarray, per_pass: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray | None]:
    """Loss and accuracy (``None`` unless classification) at ``(P, K)`` coefficient rows,
    ``per_pass`` points per pass (channels-last pooling on a CPU at one point per pass)."""
    rows = torch.as_tensor(points, dtype=torch.float64, device=device)
    losses, accuracies = [], []
    pooling = (
        channels_last_pooling(evaluator.model)
        if device.type == "cpu" and per_pass == 1
        else nullcontext()
    )
    with torch.no_grad(), evaluation_mode(evaluator.model), pooling:
        for start in range(0, rows.shape[0], per_pass):
            loss, accuracy = evaluator(rows[start : start + per_pass])
            losses.append(loss)
            accuracies.append(accuracy)
    loss_out = torch.cat(losses).cpu().numpy()
    acc_out = torch.cat(accuracies).cpu().numpy() if evaluator.classification else None
    return loss_out, acc_out


def evaluate_grid(
    evaluator: PointEvaluator,
    coords: np.ndarray,
    n_axes: int,
    memory_budget: int | None,
    points_per_pass: int | None,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Loss and accuracy on the ``coords`` grid (1-D, or 2-D indexed ``[i, j]``), in chunks.

    Returns:
        ``(loss, accuracy or None, points_per_pass)``, the chunk size from
        :func:`points_per_pass_for`.
    """
    points = _grid(coords, n_axes)
    per_pass = points_per_pass_for(
        evaluator, points.shape[0], memory_budget, points_per_pass, device
    )
    loss, accuracy = evaluate_points(evaluator, points, per_pass, device)
    shape = (len(coords),) * n_axes
    return loss.reshape(shape), None if accuracy is None else accuracy.reshape(shape), per_pass
