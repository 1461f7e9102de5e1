"""The app in-process (TestClient) on a temporary SQLite database and an embedded Redis broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server import embedded, migrate
from server.app import create_app
from server.config import Settings, get_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("OBS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OBS_STREAM_POLL_SECONDS", "0.2")
    monkeypatch.setenv("OBS_ALLOWED_HOSTS", "testserver")  # the Host TestClient sends
    get_settings.cache_clear()
    settings = get_settings()
    broker = embedded.start_redis(settings.broker_socket, settings.data_dir)
    migrate.upgrade(settings.resolved_database_url)
    yield settings
    broker.terminate()
    broker.wait()
    get_settings.cache_clear()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def db_client(
    db_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The app on each database: SQLite (embedded default) and PostgreSQL, migrated and empty."""
    monkeypatch.setenv("OBS_DATABASE_URL", db_url)
    get_settings.cache_clear()
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client
