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
    PostgreSQL receives the points through a binary COPY into a staging table and set-based
    statements (``sql.copy_upsert``); SQLite through one prepared upsert run per row in C.
    Either way a flush costs a fixed handful of statements whatever the number of series or
    pyramid levels.
    """
    # One statement may not touch a key twice (PostgreSQL): the last point of a key wins.
    latest = list({(p.name, p.step): p for p in points}.values())
    if not latest:
        return 0
    name_of = [p.name for p in latest]
    step_of = [p.step for p in latest]
    value_of = [clean(p.value) for p in latest]
    wall_of = [p.wall_time for p in latest]
    names = sorted(set(name_of))
    index = {name: i for i, name in enumerate(names)}
    count = len(latest)
    series = np.fromiter(map(index.__getitem__, name_of), np.int64, count)
    steps = np.array(step_of, dtype=np.int64)
    values = np.array(value_of, dtype=np.float64)  # None (NaN) -> NaN, stored as NULL
    walls = np.array(wall_of, dtype=np.float64)

    order = np.lexsort((steps, series))
    if connection.dialect.name == "postgresql":
        # The run's lock first: the step ranges read next stay true until commit.
        begin_write(connection, run_id, ("metrics", "metric_buckets"))
        before = _stored_ranges(connection, run_id, names)
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
        rows = list(zip(repeat(run_id), name_of, step_of, value_of, wall_of, strict=False))
        # In key order, the B-tree takes each series' rows as one run of appends.  The write
        # comes first, so the transaction holds SQLite's write lock before it reads anything;
        # the series summaries it reads next are only updated at the end of this function.
        connection.exec_driver_sql(_SQLITE_UPSERT, [rows[i] for i in order.tolist()])
        before = _stored_ranges(connection, run_id, names)

    series, steps, values = series[order], steps[order], values[order]
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


def _stored_ranges(connection: Connection, run_id: int, names: list[str]) -> dict:
    """``name -> (first_step, last_step)`` of the series' summaries (absent: never written)."""
    return {
        name: (first, last)
        for name, first, last in fetch_all(
            connection,
            "SELECT name, first_step, last_step FROM series "
            f"WHERE run_id = ? AND name IN ({', '.join('?' * len(names))})",
            (run_id, *names),
        )
    }


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
