"""Reads of the opposing-signals probe's results (written by ``worker.probe_hooks.opposing``).

Array results ``opposing.monitor`` at step 0 (the monitor set: training-set indices, labels,
ground truth, thumbnails) and ``opposing`` at every probe step (``losses``, one float32 per
monitored example; the groups and pairs in the metadata).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import ArrayResult
from server.store.results import element_series, read_arrays, unpack_arrays
from server.store.rollup import Buckets

PROBE = "opposing"  # the array results the hook writes (it imports these names)
MONITOR = "opposing.monitor"


@dataclass(frozen=True)
class Monitor:
    """The monitor set of a run: position ``i`` of every loss array is ``indices[i]``."""

    indices: np.ndarray
    labels: np.ndarray
    planted: np.ndarray | None
    images: np.ndarray | None
    meta: dict

    def positions(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """Monitor positions of training-set indices (which must be monitored)."""
        return np.searchsorted(self.indices, np.asarray(indices, dtype=np.int64))

    def label(self, position: int) -> int | None:
        """The class of the example at ``position``; ``None`` for a token sequence, whose targets
        are one token per position."""
        label = self.labels[position]
        return int(label) if np.ndim(label) == 0 else None

    def position(self, index: int) -> int | None:
        """The monitor position of training example ``index``, or ``None`` if not monitored."""
        i = int(np.searchsorted(self.indices, index))
        return i if i < len(self.indices) and self.indices[i] == index else None


def read_monitor(session: Session, *, run_id: int) -> Monitor | None:
    row = read_arrays(session, run_id=run_id, probe=MONITOR, step=0)
    if row is None:
        return None
    arrays = unpack_arrays(row.data)
    return Monitor(
        arrays["indices"],
        arrays["labels"],
        arrays.get("planted"),
        arrays.get("images"),
        row.meta,
    )


@dataclass(frozen=True)
class ProbeStep:
    step: int
    prev_step: int | None
    n_pairs: int | None
    best_score: float | None
    mean_loss: float | None


def probe_steps(session: Session, *, run_id: int, since_step: int | None = None) -> list[ProbeStep]:
    """The probe steps after ``since_step`` with their summary, reading no blob and no groups."""
    meta = ArrayResult.meta
    query = select(
        ArrayResult.step,
        meta["prev_step"].as_integer(),
        meta["n_pairs"].as_integer(),
        meta["best_score"].as_float(),
        meta["mean_loss"].as_float(),
    ).where(ArrayResult.run_id == run_id, ArrayResult.probe == PROBE)
    if since_step is not None:
        query = query.where(ArrayResult.step > since_step)
    return [ProbeStep(*row) for row in session.execute(query.order_by(ArrayResult.step))]


@dataclass(frozen=True)
class Series:
    steps: np.ndarray
    values: np.ndarray
    downsampled: bool
    total_points: int


def downsample(steps: np.ndarray, values: np.ndarray, max_points: int | None) -> Series:
    """At most ``max_points`` (≥ 4) points: the minimum and maximum of each group of consecutive
    points, and the first and last points (as the metric store's downsampling: spikes survive).
    NaN points are dropped only when downsampling."""
    total = len(steps)
    if max_points is None or total <= max_points:
        return Series(steps, values, False, total)
    finite = np.isfinite(values)
    steps_f, values_f = steps[finite], values[finite].astype(np.float64)
    groups = max(1, (max_points - 2) // 2)
    key = np.arange(len(steps_f)) * groups // max(1, len(steps_f))
    merged = Buckets.from_points(steps_f, values_f, key)
    keep = np.unique(np.r_[merged.min_step, merged.max_step, steps[0], steps[-1]])
    order = np.searchsorted(steps, keep)
    return Series(keep, values[order], True, total)


def example_losses(
    session: Session, *, run_id: int, position: int, max_points: int | None
) -> Series:
    """The loss of the monitored example at ``position`` at every probe step, downsampled."""
    steps, values = element_series(
        session, run_id=run_id, probe=PROBE, name="losses", position=position
    )
    return downsample(steps, values, max_points)
