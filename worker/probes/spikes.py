"""Online detection of train-loss spikes against a robust running baseline.

Loss spikes during training with a large learning rate are where Rosenfeld & Risteski (2023),
"Outliers with Opposing Signals Have an Outsized Effect on Neural Network Optimization", find the
opposing-signal groups at work (:mod:`worker.probes.opposing`).  The baseline is a running median
with the median absolute deviation (MAD) as its scale, so that neither the slow decrease of the
loss nor a few earlier spikes move it much.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["Spike", "SpikeDetector"]

_MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class Spike:
    """A loss spike: its first step, its loss, and the baseline it was compared with.

    Attributes:
        step: the step passed to :meth:`SpikeDetector.update`.
        loss: the loss at that step (may be ``inf`` or ``nan``).
        median: median of the history window.
        mad: scaled MAD of the history window.
        threshold: ``max(median + c * mad, (1 + r) * median)``.
    """

    step: int
    loss: float
    median: float
    mad: float
    threshold: float


class SpikeDetector:
    """Online train-loss spike detector; one :meth:`update` per step, O(window) each.

    The rule, at a step with loss ``L``: let ``H`` be the last ``window`` finite losses before it,
    ``med = median(H)`` and ``mad = 1.4826 * median(|H - med|)`` (the MAD scaled to a normal
    standard deviation).  Once ``H`` holds ``min_history`` losses, the step is *above* when

        L > threshold = max(med + c * mad, (1 + r) * med)      or L is not finite,

    i.e. the jump is large both against the recent noise and relative to the loss itself.  A
    :class:`Spike` is emitted on the first step of each run of consecutive above steps, so one
    spike gives one event.  Every finite loss then joins ``H``, so a lasting jump becomes the new
    baseline after about ``window / 2`` steps.  To resume after a restart, feed the last
    ``window`` losses again and ignore what those calls return.

    Args:
        window: length of the history ``H``.
        c: threshold in scaled MADs above the median.
        r: minimum relative jump over the median.
        min_history: losses needed before anything is flagged.
    """

    def __init__(
        self, window: int = 50, c: float = 6.0, r: float = 0.5, min_history: int = 10
    ) -> None:
        if not 1 <= min_history <= window:
            raise ValueError(f"need 1 <= min_history <= window, got {min_history=}, {window=}")
        self.window, self.c, self.r, self.min_history = window, c, r, min_history
        self._history: deque[float] = deque(maxlen=window)
        self._above = False

    def update(self, step: int, loss: float) -> Spike | None:
        """Feed the train loss of one step; return a :class:`Spike` if a spike starts here."""
        loss = float(loss)
        spike, above = None, False
        if len(self._history) >= self.min_history:
            # statistics.median on a list this short is ~7x faster than numpy's (called per step)
            median = statistics.median(self._history)
            mad = _MAD_TO_SIGMA * statistics.median([abs(h - median) for h in self._history])
            threshold = max(median + self.c * mad, (1.0 + self.r) * median)
            above = not np.isfinite(loss) or loss > threshold
            if above and not self._above:
                spike = Spike(step, loss, median, mad, threshold)
        self._above = above
        if np.isfinite(loss):
            self._history.append(loss)
        return spike
