r"""Edge of stability: the sharpness at which an optimizer's step stops being stable.

On a quadratic with curvature :math:`a`, gradient descent with step :math:`\eta` diverges once
:math:`a > 2/\eta`. Full-batch training drives the top Hessian eigenvalue up to that line and keeps
it hovering there (progressive sharpening and the edge of stability, Cohen, Kaur, Li, Kolter &
Talwalkar 2021, ICLR). Adaptive methods do the same with the *preconditioned* sharpness
:math:`\lambda_{\max}(P^{-1}H)` against their own threshold (Cohen et al. 2022, "Adaptive gradient
methods at the edge of stability", arXiv:2207.14484). The training loop calls
:func:`optimizer_threshold` and :func:`crossed_edge_of_stability`; the preconditioned sharpness
itself is :func:`worker.probes.hessian.preconditioned_sharpness`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "adam_preconditioner",
    "crossed_edge_of_stability",
    "edge_of_stability_threshold",
    "optimizer_threshold",
]


def edge_of_stability_threshold(
    lr: float,
    *,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    adam_beta1: float | None = None,
) -> float:
    r"""Sharpness at which the optimizer's step on a quadratic stops being stable.

    * SGD: :math:`2/\eta`.
    * Heavy-ball momentum :math:`\beta` with PyTorch's dampening :math:`d`
      (:math:`b \leftarrow \beta b + (1-d) g`): :math:`(2+2\beta)/((1-d)\eta)`.
    * Nesterov (PyTorch's, :math:`d=0`): :math:`(2+2\beta)/((1+2\beta)\eta)`.
    * Adam with ``adam_beta1``: :math:`(2+2\beta_1)/((1-\beta_1)\eta)`, i.e. 38/η for
      :math:`\beta_1=0.9`, to compare with the preconditioned sharpness.

    Each is where the two-term recurrence of the method on :math:`\theta \mapsto a\theta^2/2`
    gets an eigenvalue :math:`-1` (Cohen et al. 2021, App. B; 2022, §2).
    """
    if lr <= 0:
        raise ValueError("lr must be positive")
    if adam_beta1 is not None:
        return (2 + 2 * adam_beta1) / ((1 - adam_beta1) * lr)
    if nesterov:
        return (2 + 2 * momentum) / ((1 + 2 * momentum) * lr)
    return (2 + 2 * momentum) / ((1 - dampening) * lr)


def optimizer_threshold(optimizer: torch.optim.Optimizer) -> tuple[float, bool]:
    """Edge-of-stability threshold of a torch optimizer (its first param group's settings).

    Returns:
        ``(threshold, preconditioned)``: ``preconditioned`` is True for Adam/AdamW, whose
        threshold applies to the preconditioned sharpness, False for SGD (raw λ_max).
    """
    group = optimizer.param_groups[0]
    if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        return edge_of_stability_threshold(group["lr"], adam_beta1=group["betas"][0]), True
    if isinstance(optimizer, torch.optim.SGD):
        threshold = edge_of_stability_threshold(
            group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
        )
        return threshold, False
    raise ValueError(f"no stability threshold known for {type(optimizer).__name__}")


def crossed_edge_of_stability(sharpness: float, threshold: float) -> bool:
    """Whether a measured (raw or preconditioned) sharpness has reached its threshold."""
    return math.isfinite(sharpness) and sharpness >= threshold


def adam_preconditioner(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, Tensor]:
    r"""Adam's diagonal preconditioner per parameter name, from the optimizer's state.

    Adam and AdamW step :math:`\theta \leftarrow \theta - \eta P^{-1} m` with the un-corrected
    first moment :math:`m` and (Cohen et al. 2022, eq. 2)

    .. math::
        P = (1-\beta_1^t)\,\big(\mathrm{diag}\sqrt{v/(1-\beta_2^t)} + \epsilon I\big),

    where :math:`v` is ``exp_avg_sq`` (``max_exp_avg_sq`` with amsgrad) and :math:`t` the step
    count. Parameters without Adam state are left out.

    Raises:
        ValueError: the param groups have different learning rates (no single threshold).
    """
    names = {id(p): n for n, p in model.named_parameters()}
    diag, lrs = {}, set()
    for group in optimizer.param_groups:
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if "exp_avg_sq" not in state or id(p) not in names:
                continue
            t = float(state["step"])
            v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
            root = (v / (1 - beta2**t)).sqrt() + group["eps"]
            diag[names[id(p)]] = (1 - beta1**t) * root
            lrs.add(float(group["lr"]))
    if len(lrs) > 1:
        raise ValueError("preconditioned sharpness needs one learning rate for all groups")
    return diag
