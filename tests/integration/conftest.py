"""The at-scale set-up shared by the multi-process tests: PostgreSQL + Redis, a short lease."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


@pytest.fixture
def scale_env(pg_schema_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment of servers and workers: a fresh schema, a Redis database of their own."""
    from server import migrate

    db = random.randrange(1, 16)
    broker = f"{redis_url.rsplit('/', 1)[0]}/{db}"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    migrate.upgrade(pg_schema_url)
    yield {
        "OBS_DATABASE_URL": pg_schema_url,
        "OBS_BROKER_URL": broker,
        "OBS_LEASE_SECONDS": "3",
        "OBS_CHECKPOINT_DIR": str(tmp_path / "shared-checkpoints"),
    }
    client.flushdb()
