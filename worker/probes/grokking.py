"""Grokking: detect the delayed generalization, live, and measure the progress that precedes it.

Grokking (Power et al. 2022, "Grokking: Generalization beyond overfitting on small algorithmic
datasets") is train accuracy saturating long before test accuracy jumps.  :func:`detect` and the
online :class:`GrokkingMonitor` find both transitions in logged accuracies; the progress measures
are the quantities that move before the jump:

* weight norm, total and per layer — Liu et al. 2022 ("Omnigrok: Grokking beyond algorithmic
  data") tie grokking to weight decay shrinking the norm from a large-norm memorizing solution;
* relative change from initialization ``‖θ − θ₀‖ / ‖θ₀‖`` (lazy vs rich training);
* Fourier sparsity of the embeddings of a modular task — Nanda et al. 2023 ("Progress measures for
  grokking via mechanistic interpretability") find the grokked network computing with a few key
  frequencies of the residues;
* kernel-target alignment (Cristianini et al. 2001, "On kernel-target alignment") of the
  empirical neural tangent kernel, which Baratin et al. 2021 ("Implicit regularization via neural
  feature alignment") show rising as the tangent features align with the task.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap

from worker.probes.linalg import evaluation_mode

__all__ = [
    "FourierSparsity",
    "Grokking",
    "GrokkingEvent",
    "GrokkingMonitor",
    "LayerNorms",
    "NTKAlignment",
    "detect",
    "empirical_ntk",
    "fourier_sparsity",
    "ntk_alignment",
    "relative_change",
    "snapshot",
    "weight_norm",
]

MEMORIZED = "grokking.memorized"
GENERALIZED = "grokking.generalized"


@dataclass(frozen=True)
class Grokking:
    """What :func:`detect` found; steps are ``None`` where the transition did not happen.

    Attributes:
        memorization_step: first step of the first held run of train accuracy ≥ threshold.
        generalization_step: the same for test accuracy.
        delay: ``generalization_step − memorization_step``.
        is_grokking: ``delay ≥ min_delay`` and ``generalization_step ≥ ratio · max(mem, 1)``.
        memorized_at: step at which the memorization run was confirmed (``hold`` points later).
        generalized_at: step at which the generalization run was confirmed.
    """

    memorization_step: int | None
    generalization_step: int | None
    delay: int | None
    is_grokking: bool
    memorized_at: int | None
    generalized_at: int | None


@dataclass(frozen=True)
class GrokkingEvent:
    """One live event: ``kind`` is ``grokking.memorized`` or ``grokking.generalized``.

    ``step`` is the first step of the held run, ``detected_at`` the step that confirmed it;
    ``delay`` and ``is_grokking`` are set on the generalized event once memorization is known.
    """

    kind: str
    step: int
    detected_at: int
    delay: int | None = None
    is_grokking: bool | None = None


class _HeldRun:
    """First run of ``hold`` consecutive points whose causal ``window`` mean is ≥ threshold."""

    def __init__(self, threshold: float, hold: int, window: int) -> None:
        self.threshold, self.hold = threshold, hold
        self._recent: deque[float] = deque(maxlen=window)
        self._start: int | None = None
        self._length = 0
        self.step: int | None = None
        self.confirmed_at: int | None = None

    def update(self, step: int, value: float) -> bool:
        """Add a point; ``True`` exactly once, when the held run is confirmed."""
        if self.step is not None or value is None or np.isnan(value):
            return False
        self._recent.append(float(value))
        if sum(self._recent) / len(self._recent) < self.threshold:
            self._start, self._length = None, 0
            return False
        if self._start is None:
            self._start = step
        self._length += 1
        if self._length < self.hold:
            return False
        self.step, self.confirmed_at = self._start, step
        return True


class GrokkingMonitor:
    """Online grokking detection: feed points as they are logged, get each event once.

    Args:
        threshold: accuracy that counts as memorized (train) or generalized (test).
        hold: consecutive logged points that must stay at or above it; the event's step is the
            first of them, so the offline :func:`detect` on the same points gives the same steps.
        window: causal moving average over this many points before thresholding (1: none).
        grokking_ratio: generalization must come at least this many times later (in steps) than
            memorization, i.e. about 0.7 decade later on the log-step axis grokking is plotted
            on; curves rising together give ratios near 1, the grokking runs measured for
            docs/probes/grokking.md 13 to 40.
        min_delay: and at least this many steps after it.
    """

    def __init__(
        self,
        threshold: float = 0.95,
        hold: int = 5,
        window: int = 1,
        grokking_ratio: float = 5.0,
        min_delay: int = 1,
    ) -> None:
        if hold < 1 or window < 1:
            raise ValueError("hold and window must be at least 1")
        self.grokking_ratio, self.min_delay = grokking_ratio, min_delay
        self._train = _HeldRun(threshold, hold, window)
        self._test = _HeldRun(threshold, hold, window)
        self._last_step: int | None = None

    def update(
        self, step: int, train_acc: float | None, test_acc: float | None
    ) -> list[GrokkingEvent]:
        """Add the accuracies logged at ``step`` (``None``/NaN: not evaluated at this step)."""
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"steps must increase: {step} after {self._last_step}")
        self._last_step = step
        events = []
        if self._train.update(step, train_acc):
            events.append(GrokkingEvent(MEMORIZED, self._train.step, step))
        if self._test.update(step, test_acc):
            state = self.result()
            events.append(
                GrokkingEvent(GENERALIZED, self._test.step, step, state.delay, state.is_grokking)
            )
        return events

    def result(self) -> Grokking:
        """The state so far."""
        mem, gen = self._train.step, self._test.step
        delay = None if mem is None or gen is None else gen - mem
        grokking = (
            delay is not None
            and delay >= self.min_delay
            and gen >= self.grokking_ratio * max(mem, 1)
        )
        return Grokking(
            mem, gen, delay, grokking, self._train.confirmed_at, self._test.confirmed_at
        )


def detect(
    steps: Sequence[int],
    train_acc: Sequence[float],
    test_acc: Sequence[float],
    threshold: float = 0.95,
    hold: int = 5,
    grokking_ratio: float = 5.0,
    *,
    window: int = 1,
    min_delay: int = 1,
) -> Grokking:
    """Memorization and generalization steps of logged accuracy curves, and whether it grokked.

    A transition happens at the first step of the first run of ``hold`` consecutive logged points
    whose (causally ``window``-averaged) accuracy is ≥ ``threshold``; a single crossing that falls
    back is not counted.  NaN marks a point not evaluated.  This replays the points through a
    :class:`GrokkingMonitor`, so it agrees with the live events by construction.

    Args:
        steps: strictly increasing training steps of the points.
        train_acc: train accuracy at each step.
        test_acc: test accuracy at each step.
        threshold: accuracy threshold for both curves.
        hold: consecutive points that must stay above it.
        grokking_ratio: grokking needs ``generalization ≥ ratio · max(memorization, 1)``.
        window: causal moving-average length applied before the threshold.
        min_delay: grokking also needs ``delay ≥ min_delay`` steps.

    Returns:
        A :class:`Grokking` with ``None`` steps where the transition did not happen.
    """
    if not len(steps) == len(train_acc) == len(test_acc):
        raise ValueError("steps, train_acc and test_acc must have the same length")
    monitor = GrokkingMonitor(threshold, hold, window, grokking_ratio, min_delay)
    for step, train, test in zip(steps, train_acc, test_acc, strict=True):
        monitor.update(int(step), float(train), float(test))
    return monitor.result()


@dataclass(frozen=True)
class LayerNorms:
    """A total and one value per layer (module name; parameters of a module grouped)."""

    total: float
    per_layer: dict[str, float]


def _squares_by_layer(named: Iterable[tuple[str, Tensor]]) -> dict[str, float]:
    squares: dict[str, float] = {}
    for name, tensor in named:
        layer = name.rpartition(".")[0] or name
        squares[layer] = squares.get(layer, 0.0) + float(tensor.detach().double().square().sum())
    return squares


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """Detached copies of the parameters, e.g. ``θ₀`` for :func:`relative_change`."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def weight_norm(model: nn.Module) -> LayerNorms:
    """``‖θ‖₂`` over all parameters and per layer (Liu et al. 2022, Omnigrok)."""
    squares = _squares_by_layer(model.named_parameters())
    return LayerNorms(
        float(np.sqrt(sum(squares.values()))), {k: float(np.sqrt(v)) for k, v in squares.items()}
    )


def relative_change(model: nn.Module, initial: Mapping[str, Tensor]) -> LayerNorms:
    """``‖θ − θ₀‖ / ‖θ₀‖`` in total and per layer; ``initial`` from :func:`snapshot`.

    Small values over training mean lazy (kernel-regime) training, large ones rich feature
    learning.  Layers whose initial norm is zero report ``inf`` (or 0 if unchanged).
    """
    params = dict(model.named_parameters())
    change = _squares_by_layer((n, params[n] - initial[n].to(params[n])) for n in initial)
    base = _squares_by_layer(initial.items())
    per_layer = {
        k: float(np.sqrt(change[k] / base[k])) if base[k] else float("inf") * bool(change[k])
        for k in base
    }
    return LayerNorms(float(np.sqrt(sum(change.values()) / sum(base.values()))), per_layer)


@dataclass(frozen=True)
class FourierSparsity:
    """Concentration of an embedding on a few frequencies of the residues.

    Attributes:
        sparsity: share of the non-constant energy in the top ``k`` frequencies.
        frequencies: those ``k`` frequencies, largest energy first.
        energy: ``(⌊p/2⌋,)`` squared norm in each frequency ``f = 1 … ⌊p/2⌋`` (``f`` and ``p − f``
            together), summing to ``‖E − mean‖²_F``.
    """

    sparsity: float
    frequencies: tuple[int, ...]
    energy: np.ndarray


def fourier_sparsity(embedding: Tensor, k: int = 5, p: int | None = None) -> FourierSparsity:
    """Fraction of an embedding's squared norm in its top-``k`` residue frequencies.

    With ``E`` the ``p × d`` embedding (row ``a`` embeds residue ``a ∈ Z_p``) and
    ``Ê_f = Σ_a E_a e^{−2πi f a / p}`` its DFT over the residue axis, the energy of frequency
    ``f = 1 … ⌊p/2⌋`` is ``(‖Ê_f‖² + ‖Ê_{p−f}‖²) / p`` (counted once for ``f = p/2``); by Parseval
    these sum to ``‖E − 1 ē‖²_F``, the constant ``f = 0`` (the mean embedding ``ē``) being left out
    as it carries no information about the residue.  The sparsity is the share of the ``k``
    largest.  A grokked modular-addition network uses a few
    key frequencies (Nanda et al. 2023), so this approaches 1; a random embedding spreads its
    energy evenly, about ``k / ⌊p/2⌋``.

    Args:
        embedding: ``(≥p, d)`` matrix, e.g. ``nn.Embedding.weight`` (extra token rows ignored).
        k: number of top frequencies.
        p: the modulus; defaults to the number of rows.
    """
    p = len(embedding) if p is None else p
    e = embedding.detach()[:p].double()
    spectrum = torch.fft.rfft(e, dim=0).abs().square().sum(1)[1:]
    paired = torch.full_like(spectrum, 2.0)
    if p % 2 == 0:
        paired[-1] = 1.0
    energy = (spectrum * paired / p).cpu().numpy()
    top = np.argsort(energy)[::-1][:k]
    return FourierSparsity(
        float(energy[top].sum() / energy.sum()), tuple(int(f) + 1 for f in top), energy
    )


@dataclass(frozen=True)
class NTKAlignment:
    """Kernel-target alignment of the empirical NTK on a probe subset.

    Attributes:
        alignment: ``⟨K, YYᵀ⟩_F / (‖K‖_F ‖YYᵀ‖_F)`` in ``[−1, 1]`` (``K`` centred if requested).
        examples: size ``n`` of the probe subset.
        gradient_rows: per-example gradients computed (``n · outputs``, or ``n · projections``).
    """

    alignment: float
    examples: int
    gradient_rows: int


def empirical_ntk(
    model: nn.Module,
    inputs: Tensor,
    *,
    projections: int | None = None,
    seed: int = 0,
    max_bytes: int = 2**28,
    chunk_size: int | None = None,
) -> Tensor:
    """Empirical NTK ``K_ij = Σ_c ⟨∂f_c(x_i)/∂θ, ∂f_c(x_j)/∂θ⟩`` in float64, ``n × n``.

    The trace over outputs of the tangent kernel of Jacot et al. (2018), in eval mode.  Exact:
    per-example Jacobians ``vmap(jacrev(f))`` (torch.func), ``chunk_size`` outputs at a time so
    that a chunk stays under ``max_bytes``; costs ``n · C`` gradient rows and ``n² · C · P``
    multiply-adds.  With ``projections = s``: the unbiased estimate ``(1/s) Σ_r G_r G_rᵀ``, with
    ``G_r`` the per-example gradients ``vmap(grad(v_rᵀ f))`` for Rademacher ``v_r``
    (``E[v vᵀ] = I``), ``C/s`` times cheaper — for many classes.

    Args:
        model: the network; its trainable parameters are the tangent directions.
        inputs: ``(n, …)`` probe inputs, moved to the model's device.
        projections: number of random output projections; ``None`` for the exact kernel.
        seed: seed of the projections.
        max_bytes: memory bound for one chunk of Jacobians when ``chunk_size`` is ``None``.
        chunk_size: outputs per vectorized Jacobian call.
    """
    return _ntk(model, inputs, projections, seed, max_bytes, chunk_size)[0]


def _ntk(
    model: nn.Module,
    inputs: Tensor,
    projections: int | None,
    seed: int,
    max_bytes: int,
    chunk_size: int | None,
) -> tuple[Tensor, int]:
    """The empirical NTK and the number of per-example gradient rows it took."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())
    first = next(iter(params.values()))
    x, n = inputs.to(first.device), len(inputs)

    def outputs(theta: dict[str, Tensor], example: Tensor) -> Tensor:
        return functional_call(model, (theta, buffers), (example.unsqueeze(0),)).flatten()

    def add(gradients: dict[str, Tensor], kernel: Tensor) -> None:
        for block in gradients.values():
            block = block.reshape(n, -1)
            kernel += (block @ block.T).double()

    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    with evaluation_mode(model), torch.no_grad():
        n_out = outputs(params, x[0]).numel()
        if projections:
            g = torch.Generator().manual_seed(seed)
            signs = torch.randint(0, 2, (projections, n_out), generator=g) * 2.0 - 1.0
            for v in signs.to(first):
                add(vmap(grad(lambda t, e, v=v: outputs(t, e) @ v), (None, 0))(params, x), kernel)
            return kernel / projections, n * projections
        per_output = n * sum(p.numel() for p in params.values()) * first.element_size()
        chunk = chunk_size or max(1, min(n_out, max_bytes // per_output))
        for start in range(0, n_out, chunk):
            rows = slice(start, start + chunk)
            add(vmap(jacrev(lambda t, e, r=rows: outputs(t, e)[r]), (None, 0))(params, x), kernel)
    return kernel, n * n_out


def ntk_alignment(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    *,
    max_examples: int = 64,
    projections: int | None = None,
    seed: int = 0,
    centered: bool = True,
    max_bytes: int = 2**28,
) -> NTKAlignment:
    """Alignment of the empirical NTK with the labels on the first ``max_examples`` inputs.

    ``A(K, Y) = ⟨K, YYᵀ⟩_F / (‖K‖_F ‖YYᵀ‖_F)`` (Cristianini et al. 2001) with ``Y`` the one-hot
    labels centred over the examples and ``K`` from :func:`empirical_ntk`; with ``centered`` the
    kernel is centred too, ``K ← HKH`` with ``H = I − 11ᵀ/n`` (centred alignment, Cortes et al.
    2012).  Baratin et al. (2021) track this rising as the tangent features align with the task.
    Use a fixed subset with several examples per class, or ``YYᵀ`` is nearly diagonal.

    Args:
        model: a classifier with one output per class.
        inputs: ``(n, …)`` probe inputs (a fixed subset, so that values are comparable over time).
        labels: ``(n,)`` integer classes.
        max_examples: bound on the subset (time grows as ``n²``).
        projections: as in :func:`empirical_ntk`; ``None`` for the exact kernel.
        seed: seed of the projections.
        centered: centre the kernel as well as the labels.
        max_bytes: as in :func:`empirical_ntk`.
    """
    x, y = inputs[:max_examples], labels[:max_examples]
    kernel, rows = _ntk(model, x, projections, seed, max_bytes, None)
    onehot = torch.nn.functional.one_hot(y.to(kernel.device).long()).double()
    onehot -= onehot.mean(0)
    target = onehot @ onehot.T
    if centered:
        kernel = kernel - kernel.mean(0) - kernel.mean(1, keepdim=True) + kernel.mean()
    alignment = (kernel * target).sum() / (kernel.norm() * target.norm())
    return NTKAlignment(float(alignment), len(x), rows)
