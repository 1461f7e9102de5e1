"""A worker publishes the data sets its disk holds when it starts, so that ``GET /api/datasets``
lists every worker's data sets wherever the server runs (docs/datasets.md)."""

from __future__ import annotations

import logging

from server.config import Settings
from server.datasets import scan
from server.db import session_scope
from server.store import datasets as catalog

log = logging.getLogger(__name__)


def publish_catalog(settings: Settings, worker: str) -> int:
    """Replace ``worker``'s catalog entries with the data sets under its ``OBS_DATASETS_DIR``."""
    manifests = list(scan(settings.resolved_datasets_dir))
    with session_scope(settings.resolved_database_url) as session:
        catalog.publish(session, worker=worker, manifests=manifests)
    log.info("published %d data sets from %s", len(manifests), settings.resolved_datasets_dir)
    return len(manifests)
