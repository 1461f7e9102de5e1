"""Scalar series: batched idempotent upserts and per-series summaries.

Every write also maintains the min/max bucket pyramid (``rollup``) that downsampled reads
(``reads``) take, so a million-point series never leaves the database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from server.models import Metric, Series
from server.store import pgcopy, rollup
from server.store.sql import begin_write, copy_upsert, fetch_all, run


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    step: int
    value: float | None
    wall_time: float


def clean(value: float | None) -> float | None:
    """NaN is stored and served as null (JSON has no NaN); ±inf survive in the database."""
    if value is None or math.isnan(value):
        return None
    return float(value)


def json_safe(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


_SQLITE_UPSERT = (
    "INSERT INTO metrics (run_id, name, step, value, wall_time) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, name, step) DO UPDATE SET value = excluded.value, "
    "wall_time = excluded.wall_time"
)
_SERIES_UPSERT = (
    "INSERT INTO series (run_id, name, first_step, last_step, last_value, min_value, max_value) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET "
    "first_step = CASE WHEN excluded.first_step < series.first_step "
    "THEN excluded.first_step ELSE series.first_step END, "
    "last_value = CASE WHEN excluded.last_step >= series.last_step "
    "THEN excluded.last_value ELSE series.last_value END, "
    "last_step = CASE WHEN excluded.last_step > series.last_step "
    "THEN excluded.last_step ELSE series.last_step END, "
    "min_value = excluded.min_value, max_value = excluded.max_value"
)


def write_points(connection: Connection, *, run_id: int, points: Iterable[Point]) -> int:
    """Upsert points on ``(run_id, name, step)`` and update the series summaries and pyramid.

    Re-writing a step (a resumed run) replaces it, never duplicates it.  Returns rows written.
    PostgreSQL receives the points by binary COPY: straight into the table for steps beyond
    what the series held (an append), through a staging table and one set-based upsert for the
    rest (``sql.copy_upsert``); SQLite through one prepared upsert run per row in C.  Either
    way a flush costs a fixed handful of statements whatever the number of series or pyramid
    levels.
    """
    points = points if isinstance(points, list) else list(points)
    if not points:
        return 0
    names, series, steps, values, walls = _columns(points)
    count = len(steps)
    if connection.dialect.name == "postgresql":
        # The run's lock first: the step ranges read with it stay true until commit.
        tables = ("metrics", "metric_buckets")
        before = _ranges(begin_write(connection, run_id, tables, *_ranges_query(run_id, names)))
        old_lo = np.array([before.get(n, (1, 0))[0] for n in names], np.int64)[series]
        old_hi = np.array([before.get(n, (1, 0))[1] for n in names], np.int64)[series]
        copy_upsert(  # points outside a series' stored step range are new
            connection,
            table="metrics",
            key=("run_id", "name", "step"),
            columns={
                "run_id": np.full(count, run_id, np.int32),
                "name": pgcopy.Text(series, names),
                "step": steps,
                "value": values,
                "wall_time": walls,
            },
            exists=(steps >= old_lo) & (steps <= old_hi),
        )
    else:
        # NaN binds as NULL.  In key order, the B-tree takes each series' rows as one run of
        # appends.  The write comes first, so the transaction holds SQLite's write lock before
        # it reads anything; the series summaries it reads next are only updated at the end.
        label = [names[i] for i in series.tolist()]
        rows = zip(repeat(run_id), label, steps.tolist(), values.tolist(), walls.tolist())
        connection.exec_driver_sql(_SQLITE_UPSERT, list(rows))
        before = _ranges(fetch_all(connection, *_ranges_query(run_id, names)))

    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    ends = np.r_[starts[1:], len(series)] - 1
    first, last = steps[starts].tolist(), steps[ends].tolist()

    # Series with the same step range (a run's metrics at one log step) refresh together.
    groups: dict[tuple[int, int], list[int]] = {}
    for i in range(len(names)):
        groups.setdefault((first[i], last[i]), []).append(i)
    extremes: dict[str, tuple[float, float]] = {}
    kept = ~np.isnan(values)
    for (lo, hi), members in groups.items():
        local = np.full(len(names), -1, dtype=np.int64)
        local[members] = np.arange(len(members))
        mask = kept & (local[series] >= 0)
        olds = [before[names[i]] for i in members if names[i] in before]
        extremes |= rollup.refresh(
            connection,
            run_id=run_id,
            names=[names[i] for i in members],
            batch=rollup.Batch(local[series[mask]], steps[mask], values[mask]),
            lo=lo,
            hi=hi,
            last_step=max([hi, *(old_last for _, old_last in olds)]),
            stored=(min(f for f, _ in olds), max(h for _, h in olds)) if olds else None,
        )
    last_values = values[ends].tolist()
    run(
        connection,
        _SERIES_UPSERT,
        [
            (
                run_id,
                name,
                first[i],
                last[i],
                clean(last_values[i]),
                *extremes.get(name, (None, None)),
            )
            for i, name in enumerate(names)
        ],
    )
    return count


def _columns(
    points: list[Point],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sorted series names and the points' columns (series index, step, value with NaN
    for null, wall time) in key order, one row per key: the last point of a key wins, as one
    statement may not touch a key twice (PostgreSQL)."""
    count = len(points)
    name_of = [p.name for p in points]
    names = sorted(set(name_of))
    index = {name: i for i, name in enumerate(names)}
    series = np.fromiter(map(index.__getitem__, name_of), np.int64, count)
    steps = np.fromiter((p.step for p in points), np.int64, count)
    values = np.array([p.value for p in points], np.float64)  # None -> NaN
    walls = np.fromiter((p.wall_time for p in points), np.float64, count)
    order = np.lexsort((steps, series))  # stable: a key's points stay in arrival order
    series, steps = series[order], steps[order]
    last = np.r_[(series[1:] != series[:-1]) | (steps[1:] != steps[:-1]), True]
    keep = order[last]
    return names, series[last], steps[last], values[keep], walls[keep]


def _ranges_query(run_id: int, names: list[str]) -> tuple[str, tuple]:
    """The query of the series' stored step ranges, for ``_ranges``."""
    return (
        "SELECT name, first_step, last_step FROM series "
        f"WHERE run_id = ? AND name IN ({', '.join('?' * len(names))})",
        (run_id, *names),
    )


def _ranges(rows: list[tuple]) -> dict[str, tuple[int, int]]:
    """``name -> (first_step, last_step)`` of the series' summaries (absent: never written)."""
    return {name: (first, last) for name, first, last in rows}


def list_series(session: Session, *, run_id: int) -> list[Series]:
    return list(
        session.scalars(select(Series).where(Series.run_id == run_id).order_by(Series.name))
    )


def iter_points(session: Session, *, run_id: int, chunk: int = 10_000) -> Iterator[Metric]:
    """Every point of a run, ordered by name and step, streamed in chunks (CSV export)."""
    query = (
        select(Metric)
        .where(Metric.run_id == run_id)
        .order_by(Metric.name, Metric.step)
        .execution_options(yield_per=chunk)
    )
    yield from session.scalars(query)
