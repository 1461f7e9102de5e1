"""Data sets: the catalog the workers published, plus this server's own ``OBS_DATASETS_DIR``
(the embedded default shares it with its worker), and the submit-time check of a ``dataset``
task against it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session

from server.api.deps import SessionDep, SettingsDep
from server.api.errors import invalid
from server.config import Settings
from server.dataset_schemas import DatasetPublic, DatasetsPublic, DatasetTask
from server.datasets import DatasetError, Manifest, dataset_dir, read_manifest, scan
from server.model_rules import check_run
from server.schemas import RunConfig
from server.store import datasets as catalog

router = APIRouter(prefix="/datasets", tags=["datasets"])
SERVER = "server"  # the location name of the API process's own disk
TASK_LOC = ("body", "task", "dataset")  # where pydantic puts the errors of a dataset task


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


@router.get("", response_model=DatasetsPublic)
def list_datasets(session: SessionDep, settings: SettingsDep) -> DatasetsPublic:
    """Every data set a worker (or this server) can read, by name; the newest manifest wins."""
    found: dict[str, tuple[Manifest, list[str]]] = {
        m.name: (m, [SERVER]) for m in scan(settings.resolved_datasets_dir)
    }
    for worker, manifest in catalog.entries(session):
        found.setdefault(manifest.name, (manifest, []))[1].append(worker)
    data = [_public(m, locations) for _name, (m, locations) in sorted(found.items())]
    return DatasetsPublic(data=data, count=len(data))


def find_manifest(name: str, session: Session, settings: Settings) -> Manifest | None:
    """Data set ``name``'s manifest: this server's disk first, else the newest a worker
    published; ``None`` if neither has it.  ``DatasetError`` for a name that is not one or a
    manifest on this disk that cannot be read."""
    root = settings.resolved_datasets_dir
    if dataset_dir(root, name).exists():
        return read_manifest(root, name)
    published = catalog.entries(session, name)
    return published[0][1] if published else None


def _lookup(task: DatasetTask, session: Session, settings: Settings) -> Manifest:
    loc = (*TASK_LOC, "name")
    try:
        manifest = find_manifest(task.name, session, settings)
    except DatasetError as error:
        raise invalid(loc, str(error)) from None
    if manifest is None:
        raise invalid(loc, f"no worker has a data set named {task.name!r} (GET /api/datasets)")
    return manifest


def resolve_task(config: RunConfig, session: Session, settings: Settings) -> None:
    """Attach a ``dataset`` task's manifest (this server's disk, else the catalog), then check
    the model and probes against its data (``check_run``) for the limits to count; 422 naming
    the field (``task.name``, ``task.augment``, ``model…``, ``probes…``) if refused."""
    task = config.task
    if not isinstance(task, DatasetTask):
        return
    if config.model is None:
        raise invalid(("body", "model"), "a dataset task needs a model from the zoo")
    manifest = _lookup(task, session, settings)
    if task.augment and manifest.kind != "image":
        msg = f"crops and flips need images; {task.name!r} holds {manifest.kind} data"
        raise invalid((*TASK_LOC, "augment"), msg)
    task.resolve(manifest)
    try:
        check_run(config)
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
        raise RequestValidationError(errors) from None
