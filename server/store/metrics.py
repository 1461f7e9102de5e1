"""Scalar series: batched idempotent upserts, per-series summaries and downsampled reads.

Downsampling reads a min/max bucket pyramid (``rollup``) maintained on write, so a million-point
series never leaves the database: each group of buckets contributes its minimum and maximum point,
plus the range's first and last points.  Extremes such as loss spikes always survive, which LTTB
does not guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from server.models import Metric, Series
from server.store import rollup
from server.store.sql import number_array, run, text_array


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
_POSTGRES_UPSERT = (
    "INSERT INTO metrics (run_id, name, step, value, wall_time) "
    "SELECT %s, n, s, v, w FROM unnest(%s::text[], %s::bigint[], %s::float8[], %s::float8[]) "
    "AS t(n, s, v, w) "
    "ON CONFLICT (run_id, name, step) DO UPDATE SET value = excluded.value, "
    "wall_time = excluded.wall_time"
)


_SERIES_UPSERT = (
    "INSERT INTO series (run_id, name, first_step, last_step, last_value) "
    "VALUES ({p}, {p}, {p}, {p}, {p}) ON CONFLICT (run_id, name) DO UPDATE SET "
    "first_step = {least}(series.first_step, excluded.first_step), "
    "last_value = CASE WHEN excluded.last_step >= series.last_step "
    "THEN excluded.last_value ELSE series.last_value END, "
    "last_step = {greatest}(series.last_step, excluded.last_step)"
)
_SQLITE_SERIES = _SERIES_UPSERT.format(p="?", least="min", greatest="max")
_POSTGRES_SERIES = _SERIES_UPSERT.format(p="%s", least="LEAST", greatest="GREATEST")


def write_points(connection: Connection, *, run_id: int, points: Iterable[Point]) -> int:
    """Upsert points on ``(run_id, name, step)`` and update the series summaries.

    Re-writing a step (a resumed run) replaces it, never duplicates it.  Returns rows written.
    """
    latest: dict[tuple[str, int], Point] = {}
    for point in points:  # one statement may not touch a key twice (PostgreSQL)
        latest[(point.name, point.step)] = point
    if not latest:
        return 0
    rows = list(latest.values())
    summaries: dict[str, list[Point]] = {}
    for point in rows:
        summaries.setdefault(point.name, []).append(point)
    summary_rows = [_summary(run_id, name, pts) for name, pts in summaries.items()]

    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            _POSTGRES_UPSERT,
            (
                run_id,
                text_array(p.name for p in rows),
                number_array(p.step for p in rows),
                number_array(clean(p.value) for p in rows),
                number_array(p.wall_time for p in rows),
            ),
        )
        connection.exec_driver_sql(_POSTGRES_SERIES, summary_rows)
    else:
        connection.exec_driver_sql(
            _SQLITE_UPSERT, [(run_id, p.name, p.step, clean(p.value), p.wall_time) for p in rows]
        )
        connection.exec_driver_sql(_SQLITE_SERIES, summary_rows)
    # Series with the same step range (a run's metrics at one log step) refresh together.
    groups: dict[tuple[int, int], list[str]] = {}
    for name, pts in summaries.items():
        steps = [p.step for p in pts]
        groups.setdefault((min(steps), max(steps)), []).append(name)
    for (lo, hi), names in groups.items():
        placeholders = ", ".join("?" * len(names))
        last_step = run(
            connection,
            f"SELECT max(last_step) FROM series WHERE run_id = ? AND name IN ({placeholders})",
            (run_id, *names),
        ).scalar_one()
        extremes = rollup.refresh(
            connection, run_id=run_id, names=names, lo=lo, hi=hi, last_step=last_step
        )
        run(
            connection,
            "UPDATE series SET min_value = ?, max_value = ? WHERE run_id = ? AND name = ?",
            [(*extremes.get(n, (None, None)), run_id, n) for n in names],
        )
    return len(rows)


def _summary(run_id: int, name: str, points: Sequence[Point]) -> tuple:
    last = max(points, key=lambda p: p.step)
    return (run_id, name, min(p.step for p in points), last.step, clean(last.value))


def list_series(session: Session, *, run_id: int) -> list[Series]:
    return list(
        session.scalars(select(Series).where(Series.run_id == run_id).order_by(Series.name))
    )


@dataclass(frozen=True)
class SeriesData:
    name: str
    steps: list[int]
    values: list[float | None]
    downsampled: bool
    total_points: int
    wall_times: list[float | None] | None = None  # only when asked for (``with_time``)


def read_series(
    session: Session,
    *,
    run_id: int,
    name: str,
    since_step: int | None = None,
    max_points: int | None = None,
    with_time: bool = False,
) -> SeriesData:
    """Points of one series from ``since_step`` on, at most ``max_points`` (≥ 4) of them.

    ``with_time`` adds each returned point's wall time (the same points: a downsampled read looks
    up the times of the steps it kept, by key).

    Over budget, the range is cut into at most ``(max_points - 2) // 2`` groups of consecutive
    rollup buckets; each group keeps its minimum and maximum point, and the first and last points
    of the range are always kept.  Only bucket rows are read, never the whole series.
    """
    summary = session.get(Series, (run_id, name))
    if summary is None:
        return SeriesData(name, [], [], False, 0)
    lo = summary.first_step if since_step is None else max(since_step, summary.first_step)
    hi = summary.last_step
    in_range = (Metric.run_id == run_id) & (Metric.name == name) & (Metric.step >= lo)
    span = hi - lo + 1
    if max_points is None or span <= max_points:
        return _raw(session, name, in_range, with_time)

    groups = max(1, (max_points - 2) // 2)
    level = 1
    while level < rollup.MAX_LEVEL and span / rollup.BASE**level > rollup.BASE * groups:
        level += 1
    width = rollup.BASE**level
    buckets = rollup.read_level(
        session.connection(), run_id=run_id, name=name, level=level, lo=lo // width, hi=hi // width
    )
    total = int(buckets.n.sum())
    if total <= max_points:
        return _raw(session, name, in_range, with_time)
    per_group = -(-len(buckets) // groups)
    merged = buckets.merge(np.arange(len(buckets)) // per_group)
    points: dict[int, float | None] = {}
    for step, value in zip(
        np.r_[merged.min_step, merged.max_step],
        np.r_[merged.min_value, merged.max_value],
        strict=True,
    ):
        if lo <= step <= hi:  # an edge bucket may reach below since_step
            points[int(step)] = float(value)
    for order in (Metric.step, Metric.step.desc()):
        edge = session.execute(
            select(Metric.step, Metric.value).where(in_range).order_by(order).limit(1)
        ).first()
        if edge is not None:
            points[edge.step] = edge.value
    steps = sorted(points)
    times = _wall_times(session, run_id, name, steps) if with_time else None
    return SeriesData(name, steps, [json_safe(points[s]) for s in steps], True, total, times)


_TIME_CHUNK = 500  # steps per IN (...) list: under SQLite's bound-parameter limit


def _wall_times(session: Session, run_id: int, name: str, steps: list[int]) -> list[float | None]:
    """Wall times of these steps of a series, in the same order (None: rewritten meanwhile)."""
    found: dict[int, float] = {}
    for i in range(0, len(steps), _TIME_CHUNK):
        chunk = steps[i : i + _TIME_CHUNK]
        where = (Metric.run_id == run_id) & (Metric.name == name) & Metric.step.in_(chunk)
        rows = session.execute(select(Metric.step, Metric.wall_time).where(where))
        found.update((step, time) for step, time in rows)
    return [found.get(s) for s in steps]


def _raw(session: Session, name: str, where, with_time: bool = False) -> SeriesData:  # noqa: ANN001
    columns = (
        (Metric.step, Metric.value, Metric.wall_time) if with_time else (Metric.step, Metric.value)
    )
    rows = session.execute(select(*columns).where(where).order_by(Metric.step))
    steps, values, times = [], [], []
    for row in rows:
        steps.append(row[0])
        values.append(json_safe(row[1]))
        if with_time:
            times.append(row[2])
    return SeriesData(name, steps, values, False, len(steps), times if with_time else None)


def iter_points(session: Session, *, run_id: int, chunk: int = 10_000) -> Iterator[Metric]:
    """Every point of a run, ordered by name and step, streamed in chunks (CSV export)."""
    query = (
        select(Metric)
        .where(Metric.run_id == run_id)
        .order_by(Metric.name, Metric.step)
        .execution_options(yield_per=chunk)
    )
    yield from session.scalars(query)
