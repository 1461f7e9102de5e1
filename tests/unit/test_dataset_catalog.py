"""The catalog table (``server.store.datasets``) on SQLite and PostgreSQL: a worker's start
replaces its entries, and a name's entries come newest first."""

from __future__ import annotations

import dataclasses

from server.datasets import Manifest
from server.db import session_scope
from server.store import datasets as catalog

DIGITS = Manifest(
    name="digits", kind="vector", source="npz", shape=(64,), n_classes=10, train=1348, test=449,
    dtype="float32",
)  # fmt: skip


def test_a_start_replaces_the_workers_entries(db_url: str) -> None:
    images = dataclasses.replace(DIGITS, name="images", kind="image", shape=(1, 8, 8))
    with session_scope(db_url) as session:
        catalog.publish(session, worker="celery@a", manifests=[DIGITS, images])
        catalog.publish(session, worker="celery@b", manifests=[DIGITS])
    with session_scope(db_url) as session:
        catalog.publish(session, worker="celery@a", manifests=[images])  # digits removed on a
    with session_scope(db_url) as session:
        listed = sorted((w, m.name) for w, m in catalog.entries(session))
        assert listed == [("celery@a", "images"), ("celery@b", "digits")]
        ((worker, manifest),) = catalog.entries(session, "images")
        assert worker == "celery@a" and manifest == images  # the manifest round-trips exactly


def test_a_names_newest_entry_comes_first(db_url: str) -> None:
    bigger = dataclasses.replace(DIGITS, train=2000)
    with session_scope(db_url) as session:
        catalog.publish(session, worker="celery@old", manifests=[DIGITS])
    with session_scope(db_url) as session:
        catalog.publish(session, worker="celery@new", manifests=[bigger])
    with session_scope(db_url) as session:
        assert [m.train for _w, m in catalog.entries(session, "digits")] == [2000, 1348]
