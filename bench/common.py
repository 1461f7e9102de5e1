"""Helpers shared by the benchmarks: fresh databases, make-demo's data sets and timing."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from server import migrate
from server.config import get_settings
from server.datasets.demo import make_demo
from server.db import get_sessionmaker
from server.schemas import RunConfig
from server.store.runs import create_run

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def demo_datasets() -> Iterator[Path]:
    """``OBS_DATASETS_DIR`` holding make-demo's data sets: the variable's folder if it has them,
    else a temporary one made for the benchmark (about 3 s)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(os.environ.get("OBS_DATASETS_DIR", Path(tmp) / "datasets"))
        if not (root / "stdlib-text").is_dir():
            make_demo(root, Path(tmp) / "sources")
        os.environ["OBS_DATASETS_DIR"] = str(root)
        get_settings.cache_clear()
        yield root


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A migrated empty database: a SQLite file, or a throwaway PostgreSQL schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            migrate.upgrade(url)
            yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def new_run(url: str, **config: object) -> int:
    with get_sessionmaker(url)() as session:
        run = create_run(session, config=RunConfig.model_validate(config))
        session.commit()
        return run.id


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float], scale: float = 1e3, unit: str = "ms") -> str:
    return (
        f"min {min(times) * scale:.1f} {unit}, median {statistics.median(times) * scale:.1f} "
        f"{unit}, max {max(times) * scale:.1f} {unit}"
    )
