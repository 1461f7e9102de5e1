"""Metric writes are idempotent upserts; downsampled reads keep first, last, min and max."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from sqlalchemy import func, select

from server.db import get_engine, get_sessionmaker
from server.models import Metric, Series
from server.store import rollup
from server.store.metrics import Point, write_points
from server.store.reads import read_series


def write(url: str, run_id: int, points: list[Point]) -> None:
    with get_engine(url).begin() as connection:
        write_points(connection, run_id=run_id, points=points)


def read(url: str, run_id: int, name: str = "loss", **kwargs):  # noqa: ANN003, ANN201
    with get_sessionmaker(url)() as session:
        return read_series(session, run_id=run_id, name=name, **kwargs)


def test_rewrites_replace_and_never_duplicate(db_url: str, run_id: int) -> None:
    write(db_url, run_id, [Point("loss", s, float(s), 0.0) for s in range(10)])
    write(db_url, run_id, [Point("loss", s, -float(s), 1.0) for s in range(5, 15)])
    with get_sessionmaker(db_url)() as session:
        count = session.scalar(select(func.count()).select_from(Metric))
        summary = session.get(Series, (run_id, "loss"))
    assert count == 15
    assert (summary.first_step, summary.last_step, summary.last_value) == (0, 14, -14.0)
    assert (summary.min_value, summary.max_value) == (-14.0, 4.0)
    data = read(db_url, run_id)
    assert data.steps == list(range(15))
    assert data.values[:5] == [0.0, 1.0, 2.0, 3.0, 4.0] and data.values[5] == -5.0


def test_nan_and_inf_are_served_as_null(db_url: str, run_id: int) -> None:
    write(
        db_url,
        run_id,
        [Point("loss", 0, math.nan, 0), Point("loss", 1, math.inf, 0), Point("loss", 2, 1.5, 0)],
    )
    assert read(db_url, run_id).values == [None, None, 1.5]


def test_under_budget_returns_every_point(db_url: str, run_id: int) -> None:
    # 300 points spread over 30,000 steps: the step span is over budget, the count is not.
    write(db_url, run_id, [Point("loss", 100 * i, float(i), 0) for i in range(300)])
    data = read(db_url, run_id, max_points=400)
    assert not data.downsampled and len(data.steps) == 300


def test_downsampling_keeps_first_last_and_extremes(db_url: str, run_id: int) -> None:
    rng = np.random.default_rng(0)
    n = 60_000
    values = np.sin(np.arange(n) / 500.0) + 0.05 * rng.standard_normal(n)
    values[12_345] = 50.0  # a loss spike
    values[40_000] = -50.0
    points = [Point("loss", s, float(v), 0.0) for s, v in enumerate(values)]
    for start in range(0, n, 7_000):  # several flushes, like a worker
        write(db_url, run_id, points[start : start + 7_000])

    data = read(db_url, run_id, max_points=500)
    assert data.downsampled and 250 <= len(data.steps) <= 500
    assert data.total_points == n
    got = dict(zip(data.steps, data.values, strict=True))
    assert data.steps[0] == 0 and data.steps[-1] == n - 1
    assert got[12_345] == 50.0 and got[40_000] == -50.0
    assert all(got[s] == pytest.approx(values[s]) for s in data.steps)  # real points only
    # Local extremes survive too: each stretch's max/min is in the output (groups ≈ 250 steps).
    out_steps = np.array(data.steps)
    out_values = np.array(data.values)
    for lo in range(0, n, 3_000):
        near = (out_steps >= lo - 300) & (out_steps < lo + 3_300)
        assert out_values[near].max() >= values[lo : lo + 3_000].max()
        assert out_values[near].min() <= values[lo : lo + 3_000].min()
    # A uniform subsample of the same size misses them (the check above can fail).
    uniform = values[:: n // len(data.steps)]
    assert uniform.max() < 50.0

    recent = read(db_url, run_id, since_step=50_000, max_points=500)
    assert recent.steps[0] == 50_000 and recent.steps[-1] == n - 1
    assert recent.downsampled and len(recent.steps) <= 500


def test_pyramid_matches_a_recomputation_after_out_of_order_rewrites(
    db_url: str, run_id: int
) -> None:
    """Two series written together and apart, rewritten out of order, with NaN (not stored in
    the pyramid) sprinkled in and whole ranges rewritten as NaN, so that buckets empty out."""
    random.seed(1)
    truth: dict[str, dict[int, float]] = {"x": {}, "y": {}}
    for i in range(16):
        lo = random.randrange(0, 5_000)
        names = ["x", "y"] if i % 3 else ["x"]
        all_nan = i in (7, 13)
        batch = [
            Point(name, s, math.nan if all_nan or random.random() < 0.2 else random.gauss(0, 1), 0)
            for s in range(lo, lo + random.randrange(1, 900))
            for name in names
        ]
        for p in batch:
            truth[p.name][p.step] = p.value
        write(db_url, run_id, batch)
    with get_engine(db_url).connect() as connection:
        for name, points in truth.items():
            kept = {s: v for s, v in points.items() if not math.isnan(v)}
            steps = np.array(sorted(kept))
            values = np.array([kept[s] for s in steps])
            for level in range(1, 7):
                width = rollup.BASE**level
                stored = rollup.read_level(
                    connection, run_id=run_id, name=name, level=level, lo=0, hi=10**9
                )
                keys = steps // width
                assert list(stored.key) == sorted(set(keys.tolist()))
                for i, key in enumerate(stored.key):
                    mask = keys == key
                    assert stored.n[i] == mask.sum()
                    assert stored.min_value[i] == values[mask].min()
                    assert stored.max_value[i] == values[mask].max()
                    assert values[steps == stored.min_step[i]][0] == stored.min_value[i]
    with get_sessionmaker(db_url)() as session:
        summaries = {s.name: s for s in session.scalars(select(Series))}
        for name, points in truth.items():
            kept = [v for v in points.values() if not math.isnan(v)]
            assert summaries[name].min_value == min(kept)
            assert summaries[name].max_value == max(kept)
