"""Data sets from the workers' disks (docs/datasets.md): names under ``OBS_DATASETS_DIR``, the
stored form, the formats they are imported from.  Pure numpy and Pillow, so the server reads
manifests and the worker the arrays through the same code."""

from server.datasets.store import (
    DatasetError,
    Manifest,
    check_name,
    dataset_dir,
    open_arrays,
    read_manifest,
    scan,
)

__all__ = [
    "DatasetError",
    "Manifest",
    "check_name",
    "dataset_dir",
    "open_arrays",
    "read_manifest",
    "scan",
]
