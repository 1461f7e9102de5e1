"""Metric ingestion and downsampled queries, on SQLite and PostgreSQL.

Ingestion: the worker's path (``write_points``: upsert + series summary + rollup pyramid) in
batches like the sink's, against a bare INSERT executemany of the same rows (the baseline) and,
on PostgreSQL, a bare binary COPY of the same rows into the same table (its indexes included:
the floor, what the database itself takes to store the points and nothing else), in
alternating rounds on fresh runs, medians.  Query: one 1,000,000-point series downsampled to
2,000 points, against returning every raw point.  Targets: PostgreSQL ≥ 3× the bare INSERT and
≥ 200,000 points/s, SQLite ≥ 0.6× it; the downsampled query under 200 ms.

    python bench/metrics_store.py [--points 1000000] [--rounds 5] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
from sqlalchemy import text

from bench.common import fresh_database, new_run, summary, timed
from server.db import get_engine, get_sessionmaker
from server.store import pgcopy
from server.store.metrics import Point, write_points
from server.store.reads import read_series

NAMES = ["train.loss", "train.acc", "test.loss", "test.acc", "lr", "grad_norm", "weight_norm"]


def batches(total: int, batch: int, names: list[str], start: int = 0) -> list[list[Point]]:
    """The points of ``total // len(names)`` steps of ``names``, in flushes of ``batch``."""
    per_name, per_batch = total // len(names), batch // len(names)
    return [
        [
            Point(n, s, math.sin(s / 300) + 1e-3 * (s % 7), 0.0)
            for n in names
            for s in range(lo, min(start + per_name, lo + per_batch))
        ]
        for lo in range(start, start + per_name, per_batch)
    ]


def ingest(url: str, run_id: int, flushes: list[list[Point]]) -> float:
    """The worker's path, one transaction per flush (points built beforehand, as in the sink's
    buffer); returns points/s."""
    engine = get_engine(url)
    start = time.perf_counter()
    for points in flushes:
        with engine.begin() as connection:
            write_points(connection, run_id=run_id, points=points)
    return sum(map(len, flushes)) / (time.perf_counter() - start)


def plain_insert(url: str, run_id: int, flushes: list[list[tuple]]) -> float:
    """The floor: the same rows with a bare INSERT executemany (no upsert, summaries, rollups)."""
    engine = get_engine(url)
    mark = "%s" if url.startswith("postgresql") else "?"
    sql = f"INSERT INTO metrics VALUES ({', '.join([mark] * 5)})"
    start = time.perf_counter()
    for rows in flushes:
        with engine.begin() as connection:
            connection.exec_driver_sql(sql, [(run_id, *row) for row in rows])
    return sum(map(len, flushes)) / (time.perf_counter() - start)


def copy_payload(run_id: int, rows: list[tuple]) -> bytes:
    """One flush's rows as a binary COPY stream, encoded as the worker's path encodes them."""
    name, step, value, wall = zip(*rows, strict=True)
    labels = sorted(set(name))
    codes = {label: i for i, label in enumerate(labels)}
    return pgcopy.encode(
        {
            "run_id": np.full(len(rows), run_id, np.int32),
            "name": pgcopy.Text(np.fromiter(map(codes.__getitem__, name), np.int64), labels),
            "step": np.array(step, np.int64),
            "value": np.array(value, np.float64),
            "wall_time": np.array(wall, np.float64),
        }
    )


def bare_copy(url: str, run_id: int, flushes: list[list[tuple]]) -> float:
    """PostgreSQL's floor: the same rows by one binary COPY per flush into the metrics table,
    encoded beforehand — only the database's own work (and the transfer) is timed."""
    engine = get_engine(url)
    payloads = [copy_payload(run_id, rows) for rows in flushes]
    start = time.perf_counter()
    for data in payloads:
        with engine.begin() as connection:
            cursor = connection.connection.cursor()
            with cursor.copy(
                "COPY metrics (run_id, name, step, value, wall_time) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(data)
    return sum(map(len, flushes)) / (time.perf_counter() - start)


def compare_ingestion(url: str, total: int, batch: int, rounds: int) -> dict[str, float]:
    """Medians over alternating rounds, each on a fresh run: points/s of the worker path, the
    bare INSERT and (PostgreSQL) the bare COPY."""
    flushes = batches(total, batch, NAMES)
    rows = [[(p.name, p.step, p.value, p.wall_time) for p in points] for points in flushes]
    contenders = {"path": lambda run_id: ingest(url, run_id, flushes)}
    contenders["insert"] = lambda run_id: plain_insert(url, run_id, rows)
    if url.startswith("postgresql"):
        contenders["copy"] = lambda run_id: bare_copy(url, run_id, rows)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, contender in contenders.items():
            rates[name].append(contender(new_run(url)))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--ingest-points", type=int, default=210_000)
    parser.add_argument("--batch", type=int, default=20_000)  # the sink's OBS_FLUSH_POINTS
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        with fresh_database(backend) as url:
            load = os.getloadavg()[0]
            rates = compare_ingestion(url, args.ingest_points, args.batch, args.rounds)
            rate, floor = rates["path"], rates["insert"]
            print(
                f"[{backend}] ingestion, 7 series, batches of {args.batch}, median of "
                f"{args.rounds}: {rate:,.0f} points/s (bare INSERT executemany {floor:,.0f} "
                f"points/s, ratio {rate / floor:.2f})"
            )
            if "copy" in rates:
                copy = rates["copy"]
                print(
                    f"[{backend}]   bare COPY {copy:,.0f} points/s ({copy / floor:.2f}x the "
                    f"executemany: the ceiling of the ratio); path / bare COPY {rate / copy:.2f}"
                )
            print(f"[{backend}]   load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")

            big = new_run(url)
            load_rate = ingest(url, big, batches(args.points, 50_000, ["loss"]))
            with get_engine(url).connect() as connection:
                n = connection.execute(text(f"SELECT count(*) FROM metrics WHERE run_id = {big}"))
                assert n.scalar() == args.points
            sessions = get_sessionmaker(url)

            def query(max_points: int | None, sessions=sessions, big=big) -> None:  # noqa: ANN001
                with sessions() as session:
                    data = read_series(session, run_id=big, name="loss", max_points=max_points)
                    assert len(data.steps) <= (max_points or args.points)

            down = timed(lambda: query(2000), 7)
            raw = timed(lambda: query(None), 3)
            print(f"[{backend}] {args.points:,}-point series (loaded at {load_rate:,.0f} points/s)")
            print(f"[{backend}]   downsampled to 2,000 points: {summary(down)}")
            print(f"[{backend}]   raw, every point:           {summary(raw)}")
            print(
                f"[{backend}]   raw / downsampled (median): "
                f"{sorted(raw)[len(raw) // 2] / sorted(down)[len(down) // 2]:.0f}x"
            )


if __name__ == "__main__":
    main()
