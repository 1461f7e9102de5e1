"""The ``dataset`` task: a data set from the workers' disks, named, never a path (docs/datasets.md).

Its data's shape is known only from the catalog (``GET /api/datasets``), so ``RunConfig.model``
is checked against it when the run is submitted (``server.api.datasets.resolve_task``), not
from the config alone; the worker re-checks the name and opens the stored form itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator

from server.datasets.store import DatasetError, Manifest, check_name
from server.dataspec import DataSpec
from server.schema_base import KindBase

MAX_SUBSET = 10_000_000
PADDING = 4  # the standard CIFAR augmentation: random 32x32 crops of the image padded by 4


class DatasetTask(KindBase):
    """A stored data set under the worker's ``OBS_DATASETS_DIR``, trained with ``model``.

    ``subset``: that many training examples, drawn once (seeded) from the training split.
    ``normalize``: per-channel (images) or per-feature (vectors) mean and standard deviation of
    the training examples used, applied to both splits.  ``augment``: random crops of the image
    padded by 4 pixels and horizontal flips, drawn on the device for every training batch from
    the run's seed and the step (so a resumed run replays them); images only.
    """

    kind: Literal["dataset"] = "dataset"
    name: str = Field(
        min_length=1,
        max_length=100,
        title="Data set",
        description="a data set name from GET /api/datasets (a name under OBS_DATASETS_DIR)",
        json_schema_extra={"x-choices": "datasets"},  # the form's select (frontend/js/choices.js)
    )
    subset: int | None = Field(
        default=None, ge=2, le=MAX_SUBSET, description="training examples used (seeded draw)"
    )
    normalize: bool = Field(default=False, description="per-channel mean/std of the train split")
    augment: bool = Field(
        default=False, description="random crop (padding 4) and horizontal flip (images)"
    )

    _manifest: Manifest | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _a_name(cls, name: str) -> str:
        try:
            return check_name(name)
        except DatasetError as error:
            raise ValueError(str(error)) from None

    @property
    def manifest(self) -> Manifest | None:
        """The data set's manifest once resolved (at submit from the catalog, in the worker
        from its disk); ``None`` before."""
        return self._manifest

    def resolve(self, manifest: Manifest) -> None:
        self._manifest = manifest

    @property
    def spec(self) -> DataSpec | None:
        return None if self._manifest is None else self._manifest.spec

    def held(self) -> tuple[int, int]:
        """Elements and bytes the worker will hold (``Manifest.held``, after ``subset``)."""
        if self._manifest is None:
            raise RuntimeError("resolve the data set before sizing it")
        return self._manifest.held(self.subset)


class DatasetPublic(BaseModel):
    """One data set of the catalog: its manifest and where it was seen."""

    name: str
    kind: Literal["vector", "image", "text"]
    source: str = Field(description="format it was imported from")
    shape: list[int] = Field(description="one example: (features,), (C, H, W) or (context,)")
    n_classes: int = Field(description="classes, or the vocabulary of a text set")
    classes: list[str]
    train: int
    test: int
    elements: int = Field(description="inputs and targets the worker holds, both splits")
    bytes: int
    locations: list[str] = Field(description="workers that published it ('server': its own disk)")


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int
