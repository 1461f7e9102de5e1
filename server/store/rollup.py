"""Min/max bucket pyramid over a series, for downsampled reads that never scan the series.

Level ``L`` cuts the step axis into buckets of ``BASE**L`` steps and keeps, per bucket, the number
of points and the minimum and maximum points (step and value).  After a write touches steps
``[lo, hi]``, each level is recomputed for the touched buckets from the level below (level 1 from
the raw points), so the pyramid is exact even when a resumed run rewrites steps.

Series written together (a run's metrics share their steps) are refreshed together: every
statement covers all of them, so a flush costs a few statements per level, not per series.

Levels below ``LOWEST`` are not stored: a read computes them from the raw points (at most
``BASE**LOWEST`` points per bucket), and a write saves their rows — level 1 alone would be three
quarters of the pyramid, a quarter as many rows as the points themselves.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from server.store import pgcopy
from server.store.sql import copy_upsert, fetch_all, fetch_many, run

BASE = 4
MAX_LEVEL = 14  # 4**14 ≈ 2.7e8 steps per bucket at the top
LOWEST = 2  # the lowest stored level
_WIDTH = BASE**LOWEST  # steps per bucket of the lowest stored level


_FIELDS = ("key", "n", "min_step", "min_value", "max_step", "max_value")


@dataclass(frozen=True)
class Buckets:
    """Per-bucket aggregates, sorted by bucket key."""

    key: np.ndarray
    n: np.ndarray
    min_step: np.ndarray
    min_value: np.ndarray
    max_step: np.ndarray
    max_value: np.ndarray

    def __len__(self) -> int:
        return len(self.key)

    @classmethod
    def empty(cls) -> Buckets:
        ints, floats = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return cls(ints, ints, ints, floats, ints, floats)

    def take(self, rows: np.ndarray) -> Buckets:
        return Buckets(*(getattr(self, f)[rows] for f in _FIELDS))

    def concat(self, other: Buckets) -> Buckets:
        """Both sets of rows, sorted by key (keys must not repeat)."""
        joined = Buckets(*(np.concatenate((getattr(self, f), getattr(other, f))) for f in _FIELDS))
        return joined.take(np.argsort(joined.key, kind="stable"))

    @classmethod
    def from_points(cls, steps: np.ndarray, values: np.ndarray, key: np.ndarray) -> Buckets:
        ones = np.ones(len(steps), dtype=np.int64)
        return cls(key, ones, steps, values, steps, values).merge(key)

    def merge(self, parent: np.ndarray) -> Buckets:
        """Aggregate rows sharing a ``parent`` key (rows must be sorted by ``parent``)."""
        if len(parent) == 0:
            return self
        starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
        lo = np.lexsort((self.min_step, self.min_value, parent))[starts]
        hi = np.lexsort((self.max_step, -self.max_value, parent))[starts]
        return Buckets(
            parent[starts],
            np.add.reduceat(self.n, starts),
            self.min_step[lo],
            self.min_value[lo],
            self.max_step[hi],
            self.max_value[hi],
        )


_COLUMNS = "run_id, name, level, bucket, n, min_step, min_value, max_step, max_value"
_KEY = "run_id, name, level, bucket"
_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[4:])
_SQLITE_UPSERT = (
    f"INSERT INTO metric_buckets ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT ({_KEY}) DO UPDATE SET {_UPDATE}"
)
_SHIFT = 40  # composite key: series index << 40 | bucket (buckets stay below 2**40)
_MASK = (1 << _SHIFT) - 1


def _in(names: list[str]) -> str:
    return f"name IN ({', '.join('?' * len(names))})"


def _touched(lo: int, hi: int, last_step: int) -> list[tuple[int, int, int]]:
    """``(level, first bucket, last bucket)`` that a write to steps ``[lo, hi]`` changes, from
    ``LOWEST`` up to the level whose bucket 0 holds every series whole."""
    levels, b_lo, b_hi = [], lo // _WIDTH, hi // _WIDTH
    for level in range(LOWEST, MAX_LEVEL + 1):
        levels.append((level, b_lo, b_hi))
        if last_step // BASE**level == 0:
            break
        b_lo, b_hi = b_lo // BASE, b_hi // BASE
    return levels


@dataclass(frozen=True)
class Batch:
    """The points a write just stored, for the series refreshed together: ``series`` indexes the
    sorted names, NULL values left out (they are not in the pyramid)."""

    series: np.ndarray
    steps: np.ndarray
    values: np.ndarray


def refresh(
    connection: Connection,
    *,
    run_id: int,
    names: list[str],
    batch: Batch,
    lo: int,
    hi: int,
    last_step: int,
    stored: tuple[int, int] | None,
) -> dict[str, tuple[float, float]]:
    """Recompute every level's buckets of ``names`` (sorted) that overlap the steps ``[lo, hi]``.

    ``batch`` holds the points just written (already stored); ``stored`` is the step range that
    the series held *before* this write (``None``: nothing).  Levels go up until one bucket holds
    every series whole (``last_step`` is the last step of any of them); returns each series'
    minimum and maximum, read off that top bucket.  A parent bucket is merged from its recomputed
    children (in memory) and its untouched children (read).  Only what the earlier points can
    reach is read back — the raw points and stored buckets inside ``stored`` — so an append
    reads a bucket or so per level, while a replay over old steps reads what it overlaps: a
    flush costs at most four statements whatever the number of series and levels (the raw
    points and the stored buckets of every level, read in one round trip on PostgreSQL, one
    upsert, and rarely a delete).
    """
    levels = _touched(lo, hi, last_step)
    _, b_lo, b_hi = levels[0]
    series, steps, values = batch.series, batch.steps, batch.values
    old_lo, old_hi = stored if stored is not None else (0, -1)
    # Earlier points may share the lowest level's buckets: read them, with the batch's own.
    read_lo, read_hi = max(b_lo * _WIDTH, old_lo), min((b_hi + 1) * _WIDTH - 1, old_hi)
    # Stored buckets: at each level below the top, all children of the touched parents; at the
    # top, the touched buckets themselves (to find buckets that a rewrite emptied) — each cut to
    # the buckets that the earlier points can occupy.
    reads = [
        (level, b_lo // BASE * BASE, (b_hi // BASE + 1) * BASE - 1)
        for level, b_lo, b_hi in levels[:-1]
    ] + [levels[-1]]
    reads = [
        (level, max(r_lo, old_lo // BASE**level), min(r_hi, old_hi // BASE**level))
        for level, r_lo, r_hi in reads
        if stored is not None
    ]
    reads = [r for r in reads if r[1] <= r[2]]
    queries = [_read_query(run_id, names, reads)] if reads else []
    if read_lo <= read_hi:
        queries.append(
            (
                f"SELECT name, step, value FROM metrics WHERE run_id = ? AND {_in(names)} "
                "AND step >= ? AND step <= ? AND value IS NOT NULL",
                (run_id, *names, read_lo, read_hi),
            )
        )
    results = fetch_many(connection, queries)  # one round trip on PostgreSQL
    old_buckets = _parse(results[0], names) if reads else {}
    if read_lo <= read_hi:
        rows = results[-1]
        index = {name: i for i, name in enumerate(names)}
        outside = (steps < read_lo) | (steps > read_hi)
        series = np.r_[series[outside], np.fromiter((index[r[0]] for r in rows), np.int64)]
        steps = np.r_[steps[outside], np.fromiter((r[1] for r in rows), np.int64)]
        values = np.r_[values[outside], np.fromiter((r[2] for r in rows), np.float64)]
    order = np.lexsort((steps, series))
    series, steps, values = series[order], steps[order], values[order]
    buckets = Buckets.from_points(steps, values, (series << _SHIFT) | (steps // _WIDTH))

    fresh, stale = [], []
    for level, b_lo, b_hi in levels:
        old = old_buckets.get(level, Buckets.empty())
        number = old.key & _MASK
        in_range = (number >= b_lo) & (number <= b_hi)
        replaced = old.key[in_range]
        fresh.append((level, buckets, np.isin(buckets.key, replaced, assume_unique=True)))
        emptied = replaced[~np.isin(replaced, buckets.key, assume_unique=True)]
        stale += [(names[int(k >> _SHIFT)], level, int(k & _MASK)) for k in emptied]
        if level == levels[-1][0]:
            break
        children = old.take(np.flatnonzero(~in_range)).concat(buckets)
        buckets = children.merge(
            ((children.key >> _SHIFT) << _SHIFT) | ((children.key & _MASK) // BASE)
        )
    _upsert(connection, run_id=run_id, names=names, levels=fresh)
    if stale:
        run(
            connection,
            "DELETE FROM metric_buckets WHERE run_id = ? AND name = ? AND level = ? AND bucket = ?",
            [(run_id, *key) for key in stale],
        )
    # Bucket 0 of each series at the top level, made from all its children: the whole series.
    return {
        names[int(k >> _SHIFT)]: (float(v0), float(v1))
        for k, v0, v1 in zip(buckets.key, buckets.min_value, buckets.max_value, strict=True)
    }


def _upsert(
    connection: Connection,
    *,
    run_id: int,
    names: list[str],
    levels: list[tuple[int, Buckets, np.ndarray]],
) -> None:
    """Write the recomputed buckets; the mask marks those that exist already (PostgreSQL
    inserts the others without ``ON CONFLICT``)."""
    levels = [(level, b, stored) for level, b, stored in levels if len(b)]
    if not levels:
        return
    keys = np.concatenate([b.key for _, b, _ in levels])
    columns = {
        "run_id": np.full(len(keys), run_id, np.int32),
        "name": pgcopy.Text(keys >> _SHIFT, names),
        "level": np.concatenate([np.full(len(b), level, np.int32) for level, b, _ in levels]),
        "bucket": keys & _MASK,
        **{
            field: np.concatenate([getattr(b, field) for _, b, _ in levels])
            for field in ("n", "min_step", "min_value", "max_step", "max_value")
        },
    }
    if connection.dialect.name == "postgresql":
        copy_upsert(
            connection,
            table="metric_buckets",
            key=_KEY.split(", "),
            columns=columns,
            exists=np.concatenate([stored for _, _, stored in levels]),
        )
    else:
        connection.exec_driver_sql(_SQLITE_UPSERT, pgcopy.as_tuples(columns))


def _read_query(run_id: int, names: list[str], ranges: list[tuple[int, int, int]]) -> tuple:
    """The stored buckets of several series at several ``(level, first, last bucket)`` ranges:
    one statement, a UNION ALL of one index range scan per level (rows for ``_parse``)."""
    select = (
        "SELECT level, name, bucket, n, min_step, min_value, max_step, max_value "
        f"FROM metric_buckets WHERE run_id = ? AND {_in(names)} AND level = ? "
        "AND bucket >= ? AND bucket <= ?"
    )
    sql = " UNION ALL ".join([select] * len(ranges)) + " ORDER BY 1, 2, 3"
    return sql, tuple(p for level, lo, hi in ranges for p in (run_id, *names, level, lo, hi))


def _parse(rows: list[tuple], names: list[str]) -> dict[int, Buckets]:
    """Rows of ``_read_query`` per level, keyed ``series index << 40 | bucket`` (names sorted)."""
    index = {name: i for i, name in enumerate(names)}
    result = {}
    for level, group in itertools.groupby(rows, key=lambda r: r[0]):
        group = list(group)
        key = np.fromiter(((index[r[1]] << _SHIFT) | r[2] for r in group), np.int64, len(group))
        cols = list(zip(*group, strict=True))
        ints, floats = np.int64, np.float64
        result[level] = Buckets(
            key,
            np.asarray(cols[3], ints),
            np.asarray(cols[4], ints),
            np.asarray(cols[5], floats),
            np.asarray(cols[6], ints),
            np.asarray(cols[7], floats),
        )
    return result


def read_level(
    connection: Connection, *, run_id: int, name: str, level: int, lo: int, hi: int
) -> Buckets:
    """One series' buckets at ``level`` with bucket numbers in ``[lo, hi]`` (key = bucket);
    below ``LOWEST``, computed from the raw points."""
    if level >= LOWEST:
        rows = fetch_all(connection, *_read_query(run_id, [name], [(level, lo, hi)]))
        return _parse(rows, [name]).get(level, Buckets.empty())
    width = BASE**level
    rows = fetch_all(
        connection,
        "SELECT step, value FROM metrics WHERE run_id = ? AND name = ? AND step >= ? "
        "AND step <= ? AND value IS NOT NULL ORDER BY step",
        (run_id, name, lo * width, min((hi + 1) * width - 1, 2**63 - 1)),
    )
    steps = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    values = np.fromiter((r[1] for r in rows), np.float64, len(rows))
    return Buckets.from_points(steps, values, steps // width)
