"""Listing runs at 50,000 runs, on SQLite and PostgreSQL (target: < 50 ms per page).

What ``GET /api/runs`` does (``store.runs.list_runs`` and ``to_public`` of the page) for a few
filters, against the baseline of the previous implementation measured in the same run: read every
matching run, filter tags in Python, slice the page.

    PYTHONPATH=. python bench/runs_list.py [--runs 50000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import statistics

from sqlalchemy import insert, select, text

from bench.common import fresh_database, timed
from server.api.runs import to_public
from server.db import get_engine, get_sessionmaker, is_sqlite
from server.models import Run, RunStatus, RunTag, utcnow
from server.schemas import RunConfig
from server.store.runs import list_runs

CASES = {
    "limit=1": {"limit": 1},
    "limit=50": {},
    "limit=50&offset=40000": {"offset": 40_000},
    "status=running": {"status": RunStatus.running},
    "tag=sweep-7 (1,000 runs)": {"tag": "sweep-7"},
    "tag=baseline&status=failed": {"tag": "baseline", "status": RunStatus.failed},
}


def populate(url: str, n: int) -> None:
    """``n`` runs: 50 sweeps of n/50 runs, 1 % tagged "baseline", mostly completed."""
    config = RunConfig().model_dump(mode="json")
    statuses = [RunStatus.completed] * 8 + [RunStatus.failed, RunStatus.running]
    engine = get_engine(url)
    with engine.begin() as connection:
        for lo in range(0, n, 5_000):
            runs, tags = [], []
            for i in range(lo, min(n, lo + 5_000)):
                run_tags = [f"sweep-{i * 50 // n}"] + (["baseline"] if i % 100 == 0 else [])
                runs.append(
                    {
                        "id": i + 1,
                        "name": f"run-{i}",
                        "status": statuses[i % 10],
                        "config": config,
                        "tags": run_tags,
                        "queue": "cpu",
                        "created_at": utcnow(),
                        "step": 100,
                        "total_steps": 100,
                        "cancel_requested": False,
                        "attempts": 1,
                    }
                )
                tags += [{"tag": t, "run_id": i + 1} for t in run_tags]
            connection.execute(insert(Run), runs)
            connection.execute(insert(RunTag), tags)
        if not is_sqlite(engine):
            connection.execute(text("SELECT setval('runs_id_seq', :n)"), {"n": n})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # What autovacuum does on a live PostgreSQL database (then counts are index-only scans).
        connection.execute(text("ANALYZE" if is_sqlite(engine) else "VACUUM ANALYZE"))


def previous(session, *, status=None, tag=None, offset=0, limit=50):  # noqa: ANN001, ANN201
    """The implementation before: every matching run read, tags filtered in Python."""
    query = select(Run)
    if status:
        query = query.where(Run.status == status)
    runs = list(session.scalars(query.order_by(Run.id.desc())))
    if tag:
        runs = [r for r in runs if tag in (r.tags or [])]
    return runs[offset : offset + limit], len(runs)


def page(url: str, lister, params: dict) -> None:  # noqa: ANN001
    with get_sessionmaker(url)() as session:
        runs, _ = lister(session, **params)
        [to_public(r) for r in runs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        with fresh_database(backend) as url:
            populate(url, args.runs)
            print(
                f"[{backend}] {args.runs} runs: median (min–max) of {args.repeat}; "
                "before: median of 3"
            )
            for label, params in CASES.items():
                page(url, list_runs, params)  # warm the cache and the statement cache
                now = timed(lambda p=params: page(url, list_runs, p), args.repeat)
                before = timed(lambda p=params: page(url, previous, p), 3)
                ratio = statistics.median(before) / statistics.median(now)
                print(
                    f"  {label:28s} {statistics.median(now) * 1e3:6.1f} ms "
                    f"({min(now) * 1e3:.1f}–{max(now) * 1e3:.1f})"
                    f"   before {statistics.median(before) * 1e3:8.1f} ms"
                    f"   {ratio:6.0f}x"
                )
            get_engine(url).dispose()


if __name__ == "__main__":
    main()
