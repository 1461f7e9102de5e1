"""Fixtures of the store tests (SQLite and PostgreSQL through ``db_url``)."""

from __future__ import annotations

import pytest

from server.db import get_sessionmaker
from server.schemas import RunConfig
from server.store.runs import create_run


@pytest.fixture
def run_id(db_url: str) -> int:
    """A queued run in the migrated database of ``db_url``."""
    with get_sessionmaker(db_url)() as session:
        run = create_run(session, config=RunConfig())
        session.commit()
        return run.id
