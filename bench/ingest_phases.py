"""Where an ingestion flush spends its time, and what SQLite's PRAGMAs change.

Phases: the worker's path (``write_points``) over the same flushes as ``bench/metrics_store.py``,
with each helper it calls timed by wall clock (the COPY per table, the reads, the run's lock,
building the columns, the statements per table), printed beside the floor measured in the same
round (PostgreSQL: a bare binary COPY of the same rows; SQLite: a bare INSERT executemany).
PRAGMAs (SQLite): the path on one file per PRAGMA set, alternating, as a ratio to the bare INSERT.

    python bench/ingest_phases.py [--rounds 4] [--backends sqlite,postgresql] [--pragmas]
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from sqlalchemy import Connection, event

from bench.common import fresh_database, new_run
from bench.metrics_store import NAMES, bare_copy, batches, ingest, plain_insert
from server import migrate
from server.db import get_engine
from server.store import metrics, rollup, sql

PRAGMAS = {
    "as set (WAL, synchronous=NORMAL)": [],
    "cache_size=-65536": ["PRAGMA cache_size=-65536"],
    "temp_store=MEMORY": ["PRAGMA temp_store=MEMORY"],
    "mmap_size=256MiB": ["PRAGMA mmap_size=268435456"],
    "synchronous=OFF (not durable)": ["PRAGMA synchronous=OFF"],
}
spent: collections.Counter[str] = collections.Counter()


def timing(label: Callable[..., str], fn: Callable) -> Callable:
    """``fn`` adding its wall time to ``spent[label(*args)]``."""

    @functools.wraps(fn)
    def timed(*args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label(*args)] += time.perf_counter() - start

    return timed


def instrument() -> None:
    """Time the helpers ``write_points`` calls (module attributes, looked up at each call)."""
    sql._copy = timing(lambda _cursor, table, *_: f"COPY {table}", sql._copy)
    metrics.fetch_all = timing(lambda *_: "stored ranges (SQLite)", metrics.fetch_all)
    rollup.fetch_many = timing(lambda *_: "pyramid reads", rollup.fetch_many)
    metrics.begin_write = timing(
        lambda *_: "run lock, staging tables, stored ranges", metrics.begin_write
    )
    metrics._columns = timing(lambda *_: "building the columns", metrics._columns)
    rollup.refresh = timing(lambda *_: "pyramid, all of it", rollup.refresh)
    Connection.exec_driver_sql = timing(statement_label, Connection.exec_driver_sql)


def statement_label(_connection: Connection, statement: str, *_: object) -> str:
    """``INSERT INTO <table>`` for the write statements, one label for all others."""
    words = statement.split()[:3]
    return " ".join(words) if words[0] == "INSERT" else "other statements"


def phases(backend: str, rounds: int) -> None:
    flushes = batches(210_000, 20_000, NAMES)
    rows = [[(p.name, p.step, p.value, p.wall_time) for p in points] for points in flushes]
    floor = bare_copy if backend == "postgresql" else plain_insert
    with fresh_database(backend) as url:
        for _ in range(rounds):
            spent.clear()
            start = time.perf_counter()
            ingest(url, new_run(url), flushes)
            total, path = time.perf_counter() - start, dict(spent)
            bare = sum(map(len, rows)) / floor(url, new_run(url), rows)
            print(
                f"[{backend}] load {os.getloadavg()[0]:.1f}: path {total * 1e3:,.0f} ms, "
                f"{floor.__name__} {bare * 1e3:,.0f} ms for 210,000 points; "
                + ", ".join(f"{k} {v * 1e3:,.0f}" for k, v in sorted(path.items()))
            )


def pragmas(rounds: int) -> None:
    flushes = batches(140_000, 20_000, NAMES)
    rows = [[(p.name, p.step, p.value, p.wall_time) for p in points] for points in flushes]
    rates: dict[str, list[float]] = {name: [] for name in PRAGMAS}
    floors = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {}
        for i, (name, statements) in enumerate(PRAGMAS.items()):
            urls[name] = f"sqlite:///{tmp}/{i}.db"
            migrate.upgrade(urls[name])

            def apply(dbapi, _record, statements=statements) -> None:  # noqa: ANN001
                for statement in statements:
                    dbapi.execute(statement)

            event.listen(get_engine(urls[name]), "connect", apply)
        base = urls[next(iter(PRAGMAS))]
        for _ in range(rounds):
            floors.append(plain_insert(base, new_run(base), rows))
            for name, url in urls.items():
                rates[name].append(ingest(url, new_run(url), flushes))
    floor = statistics.median(floors)
    print(f"[sqlite] PRAGMAs, load {os.getloadavg()[0]:.1f}, bare INSERT {floor:,.0f} points/s:")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"[sqlite]   {name}: {rate:,.0f} points/s, {rate / floor:.2f} of the bare INSERT")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pragmas", action="store_true")
    args = parser.parse_args()
    if args.pragmas:
        pragmas(args.rounds)
    instrument()
    for backend in args.backends.split(","):
        phases(backend, args.rounds)


if __name__ == "__main__":
    main()
