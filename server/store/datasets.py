"""The data set catalog in the database: what each worker published at start."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.datasets import Manifest
from server.models import DatasetEntry, utcnow


def publish(session: Session, *, worker: str, manifests: list[Manifest]) -> None:
    """Replace ``worker``'s entries with ``manifests`` (a data set removed from its disk goes)."""
    session.execute(delete(DatasetEntry).where(DatasetEntry.worker == worker))
    now = utcnow()
    session.add_all(
        DatasetEntry(worker=worker, name=m.name, manifest=m.to_json(), updated_at=now)
        for m in manifests
    )
    session.flush()


def entries(session: Session, name: str | None = None) -> list[tuple[str, Manifest]]:
    """(worker, manifest) of every published data set (or of ``name``), newest first."""
    query = select(DatasetEntry).order_by(DatasetEntry.updated_at.desc(), DatasetEntry.worker)
    if name is not None:
        query = query.where(DatasetEntry.name == name)
    rows = session.scalars(query).all()
    return [(row.worker, Manifest.from_json(row.manifest)) for row in rows]
