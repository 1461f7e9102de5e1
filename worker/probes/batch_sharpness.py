r"""Batch sharpness: the curvature minibatch SGD actually feels, the quantity that settles at 2/η.

For full-batch gradient descent the edge of stability is :math:`\lambda_{\max}(H) \approx 2/\eta`
(Cohen et al. 2021).  With minibatches the step is taken along :math:`g_B` on the minibatch loss,
and what self-stabilizes at :math:`2/\eta` is the expected directional curvature of the minibatch
Hessians along their own gradients (Andreyev & Beneventano 2024, "Edge of stochastic stability",
arXiv:2412.20553):

.. math::
    \text{batch sharpness} = \mathbb{E}_B\!\left[\frac{g_B^\top H_B\, g_B}{\|g_B\|^2}\right],

which is below :math:`\lambda_{\max}` of the full-batch Hessian (often far below).  Each batch
costs one gradient (with its graph) and one Hessian-vector product on that batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from worker.probes.linalg import HessianOperator, LossFn

__all__ = ["BatchSharpness", "batch_sharpness"]


@dataclass(frozen=True, eq=False)
class BatchSharpness:
    """The mean over the given minibatches and each batch's ratio.

    Attributes:
        value: mean of ``per_batch``.
        per_batch: :math:`g_B^\\top H_B g_B / \\|g_B\\|^2` of each batch (float64 CPU).
        n_hvp: Hessian-vector products (one per batch).
        seconds: wall time.
    """

    value: float
    per_batch: Tensor
    n_hvp: int
    seconds: float


def batch_sharpness(
    model: nn.Module, loss_fn: LossFn, batches: Iterable[tuple[Any, Any]]
) -> BatchSharpness:
    """Batch sharpness of ``model`` over ``batches`` (each one a minibatch ``(inputs, targets)``).

    Runs as :class:`~worker.probes.linalg.HessianOperator` does: eval mode, detached parameters,
    nothing written to the model.  A batch whose gradient is exactly zero contributes 0.
    """
    started = time.perf_counter()
    ratios = []
    for batch in batches:
        op = HessianOperator(model, loss_fn, [batch])
        g = op.gradient()
        norm2 = float(g @ g)
        ratios.append(float(g @ op.matvec(g)) / norm2 if norm2 > 0 else 0.0)
    if not ratios:
        raise ValueError("batches holds no batch")
    per_batch = torch.tensor(ratios, dtype=torch.float64)
    return BatchSharpness(
        float(per_batch.mean()), per_batch, len(ratios), time.perf_counter() - started
    )
