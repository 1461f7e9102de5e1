"""Metric ingestion and downsampled queries, on SQLite and PostgreSQL.

Ingestion: the worker's path (``write_points``: upsert + series summary + rollup pyramid) in
batches like the sink's, against a plain INSERT of the same rows (the floor) measured in the same
run.  Query: one 1,000,000-point series downsampled to 2,000 points, against returning every raw
point.  Targets: ≥ 50,000 points/s ingested; the downsampled query under 200 ms.

    python bench/metrics_store.py [--points 1000000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import math
import time

from sqlalchemy import text

from bench.common import fresh_database, new_run, summary, timed
from server.db import get_engine, get_sessionmaker
from server.store.metrics import Point, read_series, write_points

NAMES = ["train.loss", "train.acc", "test.loss", "test.acc", "lr", "grad_norm", "weight_norm"]


def ingest(url: str, run_id: int, total: int, batch: int, names: list[str]) -> float:
    engine = get_engine(url)
    per_name = total // len(names)
    start = time.perf_counter()
    for lo in range(0, per_name, batch // len(names)):
        steps = range(lo, min(per_name, lo + batch // len(names)))
        points = [
            Point(n, s, math.sin(s / 300) + 1e-3 * (s % 7), 0.0) for n in names for s in steps
        ]
        with engine.begin() as connection:
            write_points(connection, run_id=run_id, points=points)
    return per_name * len(names) / (time.perf_counter() - start)


def plain_insert(url: str, run_id: int, total: int, batch: int) -> float:
    """The floor: the same rows with a bare INSERT (no upsert, no summaries, no rollups)."""
    engine = get_engine(url)
    mark = "%s" if url.startswith("postgresql") else "?"
    sql = f"INSERT INTO metrics VALUES ({', '.join([mark] * 5)})"
    start = time.perf_counter()
    for lo in range(0, total, batch):
        rows = [(run_id, "plain", s, math.sin(s / 300), 0.0) for s in range(lo, lo + batch)]
        with engine.begin() as connection:
            connection.exec_driver_sql(sql, rows)
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--ingest-points", type=int, default=210_000)
    parser.add_argument("--batch", type=int, default=20_000)  # the sink's OBS_FLUSH_POINTS
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        with fresh_database(backend) as url:
            run_id = new_run(url)
            rate = ingest(url, run_id, args.ingest_points, args.batch, NAMES)
            floor = plain_insert(url, new_run(url), args.ingest_points, args.batch)
            print(
                f"[{backend}] ingestion, 7 series, batches of {args.batch}: {rate:,.0f} points/s "
                f"(plain INSERT floor {floor:,.0f} points/s, ratio {rate / floor:.2f})"
            )

            big = new_run(url)
            load_rate = ingest(url, big, args.points, 50_000, ["loss"])
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
