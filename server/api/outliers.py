"""The opposing-signals probe (``probes.opposing``): outlier groups and per-example losses.

``/outliers`` lists the probe steps with a summary; ``/outliers/{step}`` gives the groups and
pairs found at one probe step with their members (label, ground truth, losses, thumbnail) and the
groups' mean loss around it; ``/examples/{index}/loss`` one training example's loss over the run.
Indices are training-set indices.  The same results are also served raw by
``/arrays/opposing[/{step}]`` and ``/arrays/opposing.monitor/0``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from server.api.datasets import find_manifest
from server.api.deps import STEP_MAX, MaxPoints, RunDep, SessionDep, SettingsDep, StepDep
from server.config import Settings
from server.datasets import DatasetError, Manifest
from server.store.metrics import json_safe
from server.store.outliers import (
    PROBE,
    Monitor,
    example_losses,
    probe_steps,
    read_monitor,
)
from server.store.results import read_arrays, read_arrays_between, unpack_arrays

router = APIRouter(prefix="/runs/{run_id}", tags=["outliers"])
GROUP_FIELDS = (  # as the probe stores them (OpposingGroups.to_dict, plus alignment)
    "kind",
    "majority_label",
    "label_counts",
    "coherence",
    "mean_change",
    "share",
    "alignment",
)


class OutlierStepsPublic(BaseModel):
    run_id: int
    monitor: dict | None = Field(
        description="the probe's settings and the monitor set's size, ground truth counts and "
        "image shape; null until the probe first runs"
    )
    steps: list[int]
    prev_steps: list[int | None]
    n_pairs: list[int | None]
    best_score: list[float | None]
    mean_loss: list[float | None] = Field(description="mean loss over the monitor set")


class OutlierMember(BaseModel):
    index: int = Field(description="training-set index")
    label: int | None = Field(description="its class; null for a token sequence")
    text: str | None = Field(
        default=None, description="a text window's targets (the characters it predicts), decoded"
    )
    planted: bool | None = Field(description="ground truth of a planted task, else null")
    loss_before: float | None
    loss_after: float | None
    image: list[int] | None = Field(description="uint8 pixels, row-major (image tasks)")


class OutlierGroup(BaseModel):
    id: int
    kind: Literal["rising", "falling"]
    size: int
    majority_label: int | None
    label_counts: dict[str, int]
    coherence: float | None
    mean_change: float | None
    share: float | None
    alignment: dict | None = Field(
        default=None, description="cosine with the top Hessian eigenvector, where computed"
    )
    members: list[OutlierMember]


class OutlierPair(BaseModel):
    rising: int = Field(description="id of the rising group")
    falling: int = Field(description="id of the falling group")
    score: float
    oscillation: dict | None = None


class GroupCurves(BaseModel):
    steps: list[int]
    mean_loss: list[list[float | None]] = Field(description="per group (by id), per step")


class OutliersPublic(BaseModel):
    run_id: int
    step: int
    prev_step: int | None
    mean_loss: float | None
    threshold: float | None
    total_change: float | None
    image_shape: list[int] | None
    groups: list[OutlierGroup]
    pairs: list[OutlierPair]
    curves: GroupCurves


class ExampleLossPublic(BaseModel):
    run_id: int
    index: int
    label: int | None = Field(description="its class; null for a token sequence")
    planted: bool | None
    steps: list[int]
    values: list[float | None]
    downsampled: bool
    total_points: int


def monitor_of(session: SessionDep, run_id: int) -> Monitor:
    monitor = read_monitor(session, run_id=run_id)
    if monitor is None:
        raise HTTPException(
            404,
            detail=f"run {run_id} has no per-example losses: the opposing probe is off or has "
            "not run yet",
        )
    return monitor


@router.get("/outliers", response_model=OutlierStepsPublic)
def outlier_steps(
    run: RunDep,
    session: SessionDep,
    since_step: Annotated[
        int | None, Query(ge=0, le=STEP_MAX, description="only steps after this")
    ] = None,
) -> OutlierStepsPublic:
    """The opposing probe's steps, with their number of pairs and best pair score."""
    monitor = read_monitor(session, run_id=run.id)
    rows = probe_steps(session, run_id=run.id, since_step=since_step)
    return OutlierStepsPublic(
        run_id=run.id,
        monitor=None if monitor is None else monitor.meta,
        steps=[r.step for r in rows],
        prev_steps=[r.prev_step for r in rows],
        n_pairs=[r.n_pairs for r in rows],
        best_score=[json_safe(r.best_score) for r in rows],
        mean_loss=[json_safe(r.mean_loss) for r in rows],
    )


@router.get("/outliers/{step}", response_model=OutliersPublic)
def outliers_at(
    run: RunDep,
    session: SessionDep,
    settings: SettingsDep,
    step: StepDep,
    span: Annotated[
        int, Query(ge=0, le=500, description="probe steps each side in the mean loss curves")
    ] = 20,
) -> OutliersPublic:
    """The groups whose loss rose and fell most between the previous probe step and ``step``."""
    row = read_arrays(session, run_id=run.id, probe=PROBE, step=step)
    if row is None:
        raise HTTPException(404, detail=f"run {run.id} has no opposing result at step {step}")
    monitor = monitor_of(session, run.id)
    meta = row.meta
    after = unpack_arrays(row.data)["losses"]
    before = None
    if meta.get("prev_step") is not None:
        prev = read_arrays(session, run_id=run.id, probe=PROBE, step=meta["prev_step"])
        before = None if prev is None else unpack_arrays(prev.data)["losses"]
    positions = [monitor.positions(g["members"]) for g in meta.get("groups", [])]
    text = text_set(run.config, session, settings)
    groups = [
        OutlierGroup(
            id=i,
            size=len(pos),
            members=[member(monitor, int(p), before, after, text) for p in pos],
            **{k: g.get(k) for k in GROUP_FIELDS},
        )
        for i, (g, pos) in enumerate(zip(meta.get("groups", []), positions, strict=True))
    ]
    every = int(monitor.meta.get("every", 1))
    lo, hi = max(0, step - span * every), min(STEP_MAX, step + span * every)
    around = read_arrays_between(session, run_id=run.id, probe=PROBE, lo=lo, hi=hi)
    curves = GroupCurves(
        steps=[s for s, _ in around],
        mean_loss=[
            [json_safe(float(np.mean(arrays["losses"][pos]))) for _, arrays in around]
            for pos in positions
        ],
    )
    return OutliersPublic(
        run_id=run.id,
        step=step,
        prev_step=meta.get("prev_step"),
        mean_loss=meta.get("mean_loss"),
        threshold=meta.get("threshold"),
        total_change=meta.get("total_change"),
        image_shape=monitor.meta.get("image_shape"),
        groups=groups,
        pairs=[OutlierPair(**p) for p in meta.get("pairs", [])],
        curves=curves,
    )


def text_set(config: dict, session: Session, settings: Settings) -> Manifest | None:
    """The stored text data set a run trains on, if any and still listed (its name was checked
    at submit and is checked again where it meets the disk)."""
    task = config.get("task") or {}
    if task.get("kind") != "dataset":
        return None
    try:
        manifest = find_manifest(task["name"], session, settings)
    except DatasetError:
        return None
    return manifest if manifest is not None and manifest.kind == "text" else None


def member(
    monitor: Monitor,
    position: int,
    before: np.ndarray | None,
    after: np.ndarray,
    text: Manifest | None = None,
) -> OutlierMember:
    label = monitor.label(position)
    return OutlierMember(
        index=int(monitor.indices[position]),
        label=label,
        text=text.decode(monitor.labels[position]) if text and label is None else None,
        planted=None if monitor.planted is None else bool(monitor.planted[position]),
        loss_before=None if before is None else json_safe(float(before[position])),
        loss_after=json_safe(float(after[position])),
        image=None if monitor.images is None else monitor.images[position].ravel().tolist(),
    )


@router.get("/examples/{index}/loss", response_model=ExampleLossPublic)
def example_loss(
    run: RunDep,
    session: SessionDep,
    index: Annotated[int, Path(ge=0, description="training-set index")],
    max_points: MaxPoints = 1000,
) -> ExampleLossPublic:
    """One monitored training example's loss at every probe step (min/max downsampled)."""
    monitor = monitor_of(session, run.id)
    position = monitor.position(index) if index <= STEP_MAX else None
    if position is None:
        raise HTTPException(
            404,
            detail=f"training example {index} is not in the monitor set of run {run.id} "
            f"({len(monitor.indices)} examples)",
        )
    series = example_losses(
        session, run_id=run.id, position=position, max_points=max_points or None
    )
    return ExampleLossPublic(
        run_id=run.id,
        index=index,
        label=monitor.label(position),
        planted=None if monitor.planted is None else bool(monitor.planted[position]),
        steps=series.steps.tolist(),
        values=[json_safe(v) for v in series.values.tolist()],
        downsampled=series.downsampled,
        total_points=series.total_points,
    )
