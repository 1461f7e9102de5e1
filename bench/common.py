"""Helpers shared by the benchmarks: fresh databases and timing."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from server import migrate
from server.db import get_sessionmaker
from server.schemas import RunConfig
from server.store.runs import create_run

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


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
