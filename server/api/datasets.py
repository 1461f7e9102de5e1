"""Data sets: the catalog the workers published, plus this server's own ``OBS_DATASETS_DIR``
(the embedded default shares it with its worker), and the submit-time check of a ``dataset``
task against it."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from server.api.deps import SessionDep, SettingsDep
from server.api.errors import invalid, responses
from server.config import Settings
from server.dataset_schemas import DatasetPublic, DatasetsPublic, DatasetTask
from server.datasets import DatasetError, Manifest, dataset_dir, read_manifest, scan
from server.schemas import RunConfig
from server.store import datasets as catalog

router = APIRouter(prefix="/datasets", tags=["datasets"])
SERVER = "server"  # the location name of the API process's own disk


def _public(manifest: Manifest, locations: list[str]) -> DatasetPublic:
    elements, size = manifest.held()
    return DatasetPublic(
        **{k: getattr(manifest, k) for k in ("name", "kind", "source", "n_classes", "classes")},
        shape=list(manifest.shape),
        train=manifest.train,
        test=manifest.test,
        elements=elements,
        bytes=size,
        locations=locations,
    )


@router.get("", response_model=DatasetsPublic, responses=responses(422))
def list_datasets(session: SessionDep, settings: SettingsDep) -> DatasetsPublic:
    """Every data set a worker (or this server) can read, by name; the newest manifest wins."""
    found: dict[str, tuple[Manifest, list[str]]] = {
        m.name: (m, [SERVER]) for m in scan(settings.datasets_dir)
    }
    for worker, manifest in catalog.entries(session):
        found.setdefault(manifest.name, (manifest, []))[1].append(worker)
    data = [_public(m, locations) for _name, (m, locations) in sorted(found.items())]
    return DatasetsPublic(data=data, count=len(data))


def _lookup(task: DatasetTask, session: Session, settings: Settings) -> Manifest:
    loc = ("body", "task", "dataset", "name")
    try:
        if dataset_dir(settings.datasets_dir, task.name).exists():
            return read_manifest(settings.datasets_dir, task.name)
    except DatasetError as error:
        raise invalid(loc, str(error)) from None
    published = catalog.entries(session, task.name)
    if not published:
        raise invalid(loc, f"no worker has a data set named {task.name!r} (GET /api/datasets)")
    return published[0][1]


def resolve_task(config: RunConfig, session: Session, settings: Settings) -> None:
    """Attach a ``dataset`` task's manifest (this server's disk, else the catalog) so the limits
    and the model's shape check see its data; 422 naming ``task.name`` if it is refused."""
    task = config.task
    if isinstance(task, DatasetTask):
        task.resolve(_lookup(task, session, settings))
