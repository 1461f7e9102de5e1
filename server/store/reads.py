"""Downsampled reads of scalar series, for one run or for many at once (a comparison).

A read over budget takes the min/max bucket pyramid (``rollup``) at the finest level with at most
``BASE ×`` the budget of buckets, merges groups of buckets down to the budget and adds each
range's first and last points, so extremes such as loss spikes always survive and a
million-point series never leaves the database.

However many runs and series are asked for, a read is a fixed handful of statements: the
series' summaries, then one statement each for the buckets of every downsampled series, the
edge points of those, and the points of every series read whole.  Each joins a ``VALUES`` list
of the wanted series (``_WANTED``) to the table through its primary key, so it costs one index
range scan per series but one round trip and one Python loop over plain tuples — ten compared
runs used to cost ten requests of a few statements per series each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from server.store import rollup
from server.store.metrics import json_safe
from server.store.sql import fetch_all


@dataclass(frozen=True)
class SeriesData:
    name: str
    steps: list[int]
    values: list[float | None]
    downsampled: bool
    total_points: int
    wall_times: list[float | None] | None = None  # only when asked for (``with_time``)


@dataclass(frozen=True)
class RunSeries:
    """The series read of one run, in the order asked, and the names of all its series."""

    series: list[SeriesData]
    available: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Wanted:
    """One series to read: ``key`` is its position in the read, ``lo``/``hi`` its step range."""

    key: int
    run_id: int
    name: str
    lo: int
    hi: int
    level: int = 0  # the pyramid level read (0: every point)

    def steps(self) -> tuple:
        """The ``wanted`` row of a read by step (points, edges)."""
        return (self.key, self.run_id, self.name, 0, self.lo, self.hi)

    def buckets(self) -> tuple:
        """The ``wanted`` row of a read of the pyramid: bucket numbers at ``level``."""
        width = rollup.BASE**self.level
        return (self.key, self.run_id, self.name, self.level, self.lo // width, self.hi // width)


# Up to _CHUNK wanted series per statement: 6 parameters each stay far below both databases'
# bound-parameter limits (SQLite 32,766 by default, PostgreSQL 65,535).
_CHUNK = 2000
_WANTED = "WITH wanted (k, run_id, name, level, lo, hi) AS (VALUES {rows}) "
_BUCKETS = (
    "SELECT w.k, b.n, b.min_step, b.min_value, b.max_step, b.max_value "
    "FROM wanted AS w JOIN metric_buckets AS b ON b.run_id = w.run_id AND b.name = w.name "
    "AND b.level = w.level AND b.bucket >= w.lo AND b.bucket <= w.hi ORDER BY w.k, b.bucket"
)
_BUCKET_ROW = np.dtype(
    [("k", np.int64), ("n", np.int64), ("min_step", np.int64), ("min_value", np.float64)]
    + [("max_step", np.int64), ("max_value", np.float64)]
)
# A range's first point at or after ``lo`` (its last point is the series' last step, ``hi``).
_EDGES = (
    "SELECT w.k, m.step, m.value FROM wanted AS w JOIN metrics AS m "
    "ON m.run_id = w.run_id AND m.name = w.name AND m.step IN ((SELECT min(f.step) "
    "FROM metrics AS f WHERE f.run_id = w.run_id AND f.name = w.name AND f.step >= w.lo), w.hi) "
    "ORDER BY w.k, m.step"
)
_RAW = (
    "SELECT w.k, m.step, m.value{time} FROM wanted AS w JOIN metrics AS m "
    "ON m.run_id = w.run_id AND m.name = w.name AND m.step >= w.lo ORDER BY w.k, m.step"
)


def _joined(connection: Connection, query: str, wanted: Sequence[tuple]) -> list[tuple]:
    """Rows of ``query`` over the ``wanted`` rows (``_Wanted.steps`` or ``.buckets``), ordered
    by their key."""
    rows: list[tuple] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
        params = tuple(p for row in chunk for p in row)
        rows += fetch_all(connection, _WANTED.format(rows=values) + query, params)
    return rows


def _summaries(connection: Connection, run_ids: Sequence[int]) -> dict[int, dict]:
    """``run_id -> {name: (first_step, last_step)}`` of every series of these runs, by name."""
    found: dict[int, dict] = {run_id: {} for run_id in run_ids}
    rows = fetch_all(
        connection,
        "SELECT run_id, name, first_step, last_step FROM series "
        f"WHERE run_id IN ({', '.join('?' * len(run_ids))}) ORDER BY run_id, name",
        tuple(run_ids),
    )
    for run_id, name, first, last in rows:
        found[run_id][name] = (first, last)
    return found


def level_for(span: int, max_points: int) -> int:
    """The finest pyramid level with at most ``BASE ×`` the budget's groups of buckets."""
    groups = max(1, (max_points - 2) // 2)
    level = 1
    while level < rollup.MAX_LEVEL and span / rollup.BASE**level > rollup.BASE * groups:
        level += 1
    return level


def read_runs(
    session: Session,
    *,
    run_ids: Sequence[int],
    names: Sequence[str] | None = None,
    since_step: int | None = None,
    max_points: int | None = None,
    with_time: bool = False,
) -> dict[int, RunSeries]:
    """The series ``names`` (``None``: all) of each run, from ``since_step`` on, at most
    ``max_points`` (≥ 4) points each.  A name the run lacks reads as an empty series.

    ``with_time`` adds each returned point's wall time (the same points: a downsampled read looks
    up the times of the steps it kept, by key).  Over budget, the range is cut into at most
    ``(max_points - 2) // 2`` groups of consecutive rollup buckets; each group keeps its minimum
    and maximum point, and the first and last points of the range are always kept.
    """
    if not run_ids:
        return {}
    connection = session.connection()
    summaries = _summaries(connection, run_ids)
    results: dict[int, SeriesData] = {}
    wanted: list[_Wanted] = []
    for run_id in run_ids:
        for name in summaries[run_id] if names is None else names:
            key = len(results) + len(wanted)
            if name not in summaries[run_id]:
                results[key] = SeriesData(name, [], [], False, 0)
                continue
            first, last = summaries[run_id][name]
            lo = first if since_step is None else max(since_step, first)
            span = last - lo + 1
            level = 0 if max_points is None or span <= max_points else level_for(span, max_points)
            wanted.append(_Wanted(key, run_id, name, lo, last, level))

    whole = [w for w in wanted if not w.level]
    bucketed = [w for w in wanted if w.level]
    stored = [w for w in bucketed if w.level >= rollup.LOWEST]
    buckets = _bucket_rows(connection, stored) if stored else {}
    for w in bucketed:
        if w.level < rollup.LOWEST:  # the finest levels are not stored: made from the points
            _, run_id, name, level, lo, hi = w.buckets()
            buckets[w.key] = rollup.read_level(
                connection, run_id=run_id, name=name, level=level, lo=lo, hi=hi
            )
    sampled = []
    for w in bucketed:
        found = buckets.get(w.key, rollup.Buckets.empty())
        if int(found.n.sum()) <= max_points:  # a sparse series: every point fits
            whole.append(w)
        else:
            sampled.append(w)
            results[w.key] = _merged(w, found, max_points)
    edges = _edges(connection, sampled) if sampled else {}
    for w in sampled:
        data = _with_edges(results[w.key], *edges.get(w.key, ([], [])))
        if with_time:
            times = _wall_times(connection, w.run_id, w.name, data.steps)
            data = replace(data, wall_times=times)
        results[w.key] = data
    results |= _whole(connection, sorted(whole, key=lambda w: w.key), with_time)

    ordered = [results[key] for key in sorted(results)]
    out, start = {}, 0
    for run_id in run_ids:
        count = len(summaries[run_id]) if names is None else len(names)
        out[run_id] = RunSeries(ordered[start : start + count], list(summaries[run_id]))
        start += count
    return out


def read_series(
    session: Session,
    *,
    run_id: int,
    name: str,
    since_step: int | None = None,
    max_points: int | None = None,
    with_time: bool = False,
) -> SeriesData:
    """One series of one run (``read_runs``)."""
    (data,) = read_runs(
        session,
        run_ids=[run_id],
        names=[name],
        since_step=since_step,
        max_points=max_points,
        with_time=with_time,
    )[run_id].series
    return data


def _bucket_rows(connection: Connection, wanted: list[_Wanted]) -> dict[int, rollup.Buckets]:
    """Each series' buckets at its level over its range, in order (keyed by position: merging
    needs only the order): one statement for all of them."""
    rows = _joined(connection, _BUCKETS, [w.buckets() for w in wanted])
    table = np.array(rows, dtype=_BUCKET_ROW)
    bounds = np.flatnonzero(np.diff(table["k"])) + 1
    return {
        int(part["k"][0]): rollup.Buckets(
            np.arange(len(part)), *(part[f] for f in _BUCKET_ROW.names[1:])
        )
        for part in np.split(table, bounds)
        if len(part)
    }


def _merged(w: _Wanted, buckets: rollup.Buckets, max_points: int) -> SeriesData:
    """The minimum and maximum point of each group of consecutive buckets inside the range (an
    edge bucket may reach below ``since_step``); the edges are added by ``_with_edges``."""
    groups = max(1, (max_points - 2) // 2)
    per_group = -(-len(buckets) // groups)
    merged = buckets.merge(np.arange(len(buckets)) // per_group)
    steps = np.r_[merged.min_step, merged.max_step]
    values = np.r_[merged.min_value, merged.max_value]
    inside = (steps >= w.lo) & (steps <= w.hi)
    return SeriesData(
        w.name, steps[inside].tolist(), values[inside].tolist(), True, int(buckets.n.sum())
    )


def _edges(connection: Connection, wanted: list[_Wanted]) -> dict[int, tuple[list, list]]:
    """``key -> (steps, values)`` of each range's first and last points (NULL: NaN)."""
    found: dict[int, tuple[list, list]] = {}
    for key, step, value in _joined(connection, _EDGES, [w.steps() for w in wanted]):
        steps, values = found.setdefault(key, ([], []))
        steps.append(step)
        values.append(math.nan if value is None else value)
    return found


def _with_edges(data: SeriesData, steps: list[int], values: list[float]) -> SeriesData:
    """The points with the range's edges added, sorted by step, NaN and ±inf as ``None``."""
    all_steps = np.array(data.steps + steps, dtype=np.int64)
    all_values = np.array(data.values + values, dtype=np.float64)
    kept, first = np.unique(all_steps, return_index=True)
    return SeriesData(
        data.name, kept.tolist(), _json_values(all_values[first]), True, data.total_points
    )


def _json_values(values: np.ndarray) -> list[float | None]:
    """``values`` as a list, NaN and ±inf as ``None`` (JSON has neither)."""
    out = values.tolist()
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        out[i] = None
    return out


def _whole(connection: Connection, wanted: list[_Wanted], with_time: bool) -> dict[int, SeriesData]:
    """Every point of each series from its ``lo`` on: one statement for all of them."""
    if not wanted:
        return {}
    found = {w.key: (w.name, [], [], []) for w in wanted}
    query = _RAW.format(time=", m.wall_time" if with_time else "")
    rows = _joined(connection, query, [w.steps() for w in wanted])
    for row in rows:
        _, steps, values, times = found[row[0]]
        steps.append(row[1])
        values.append(json_safe(row[2]))
        if with_time:
            times.append(row[3])
    return {
        key: SeriesData(name, steps, values, False, len(steps), times if with_time else None)
        for key, (name, steps, values, times) in found.items()
    }


_TIME_CHUNK = 500  # steps per IN (...) list: under SQLite's bound-parameter limit


def _wall_times(
    connection: Connection, run_id: int, name: str, steps: list[int]
) -> list[float | None]:
    """Wall times of these steps of a series, in the same order (None: rewritten meanwhile)."""
    found: dict[int, float] = {}
    for i in range(0, len(steps), _TIME_CHUNK):
        chunk = steps[i : i + _TIME_CHUNK]
        rows = fetch_all(
            connection,
            "SELECT step, wall_time FROM metrics WHERE run_id = ? AND name = ? "
            f"AND step IN ({', '.join('?' * len(chunk))})",
            (run_id, name, *chunk),
        )
        found.update(rows)
    return [found.get(s) for s in steps]
