"""Fixtures of the integration tests: an ``observatory serve`` for the SDK's scripts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from server import migrate
from tests.conftest import Service


@pytest.fixture
def sdk_server_env(pg_schema_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    migrate.upgrade(pg_schema_url)
    db = random.randint(1, 15)
    return {
        "OBS_DATABASE_URL": pg_schema_url,
        "OBS_BROKER_URL": f"{redis_url.rsplit('/', 1)[0]}/{db}",
        "OBS_LEASE_SECONDS": "4",
    }


@pytest.fixture
def sdk_server(sdk_server_env: dict[str, str], tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path / "server", "serve", **sdk_server_env)
    yield svc
    svc.stop()
