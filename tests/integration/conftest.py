"""Fixtures of the multi-process tests: the at-scale set-up (PostgreSQL + Redis, a short lease)
and an ``observatory serve`` for the SDK's scripts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Service


@pytest.fixture
def scale_env(pg_schema_url: str, broker_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment of servers and workers: a fresh schema, a Redis database of their own."""
    from server import migrate

    migrate.upgrade(pg_schema_url)
    return {
        "OBS_DATABASE_URL": pg_schema_url,
        "OBS_BROKER_URL": broker_url,
        "OBS_LEASE_SECONDS": "3",
        "OBS_CHECKPOINT_DIR": str(tmp_path / "shared-checkpoints"),
    }


@pytest.fixture
def sdk_server_env(scale_env: dict[str, str]) -> dict[str, str]:
    """The SDK tests' server: a lease long enough for a script's heartbeat under load."""
    return {**scale_env, "OBS_LEASE_SECONDS": "4"}


@pytest.fixture
def sdk_server(sdk_server_env: dict[str, str], tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path / "server", "serve", **sdk_server_env)
    yield svc
    svc.stop()
