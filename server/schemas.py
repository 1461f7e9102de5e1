"""Pydantic schemas: the RunConfig a user submits, and what the API returns.

Tasks are a discriminated union on ``kind``: a new task is one schema class here plus one builder
in ``worker.training.tasks``.  Probes are fields of ``ProbesConfig``; an unknown probe is an error.
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import reduce
from operator import or_
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from server.config import get_settings
from server.dataset_schemas import DatasetTask
from server.model_rules import check_run
from server.model_schemas import ModelConfig
from server.plugins import installed_plugins
from server.schema_base import KindBase, Strict
from server.task_base import TaskBase
from server.validation import PRINTABLE, field_error, located_error


class ModularTask(TaskBase):
    """a ∘ b mod p for all pairs, split into train and test.

    ``model="mlp"``: the two embeddings concatenated, one hidden layer of ``hidden`` units.
    ``model="transformer"``: the one-layer transformer of Nanda et al. (2023) on the tokens
    ``a b =`` (``=`` is token p), ``embed_dim`` = d_model, ``heads`` attention heads, an MLP of
    ``hidden`` ReLU units, read out at the last position.  Both keep the residue embeddings in
    ``model.embed`` (rows 0 … p − 1), which the grokking probe's Fourier sparsity reads.
    """

    kind: Literal["modular"] = "modular"
    p: int = Field(default=97, ge=2, le=1000, description="Modulus (prime for division).")
    op: Literal["add", "sub", "mul", "div", "poly"] = Field(
        default="add", description="a+b, a-b, a*b, a/b (p prime), a^2+ab+b^2"
    )
    train_fraction: float = Field(default=0.4, gt=0, lt=1)
    model: Literal["mlp", "transformer"] = "mlp"
    embed_dim: int = Field(default=128, ge=1, le=4096, description="embedding width (d_model)")
    hidden: int = Field(default=512, ge=1, le=16384, description="MLP hidden units")
    heads: int = Field(default=4, ge=1, le=64, description="attention heads (transformer)")
    layer_norm: bool = Field(
        default=False, description="pre-LayerNorm in the transformer (Nanda et al.: none)"
    )

    @model_validator(mode="after")
    def _prime_for_division(self) -> ModularTask:
        if self.op == "div" and any(self.p % d == 0 for d in range(2, math.isqrt(self.p) + 1)):
            raise field_error(self, "p", message="division mod p needs a prime p")
        if self.model == "transformer" and self.embed_dim % self.heads:
            raise field_error(
                self,
                "embed_dim",
                message=f"must be a multiple of heads ({self.heads}) in the transformer",
            )
        return self


class DigitsTask(TaskBase):
    """scikit-learn's 8x8 handwritten digits (1,797 images, shipped in the package)."""

    kind: Literal["digits"] = "digits"
    model: Literal["mlp", "cnn"] = "mlp"
    hidden: int = Field(default=64, ge=1, le=8192, description="MLP width / CNN channels")
    depth: int = Field(default=2, ge=1, le=8, description="hidden layers (MLP)")
    batch_norm: bool = Field(
        default=False, description="MLP: BatchNorm1d between each hidden Linear and its ReLU"
    )
    test_fraction: float = Field(default=0.25, gt=0, lt=1)
    train_size: int | None = Field(default=None, ge=10, description="subsample the train split")


class GaussianMixtureTask(TaskBase):
    """Classes drawn from isotropic Gaussians with random means; an MLP classifier."""

    kind: Literal["gaussian_mixture"] = "gaussian_mixture"
    n_classes: int = Field(default=4, ge=2, le=1000)
    dim: int = Field(default=16, ge=1, le=4096)
    n_train: int = Field(default=2048, ge=10, le=1_000_000)
    n_test: int = Field(default=1024, ge=10, le=1_000_000)
    separation: float = Field(default=3.0, gt=0, description="distance scale of class means")
    hidden: int = Field(default=64, ge=1, le=8192)
    depth: int = Field(default=2, ge=1, le=8)


class OpposingSignalsTask(TaskBase):
    """Planted opposing signals (Rosenfeld & Risteski 2023): a core signal sets the label, and a
    small fraction of examples, split between classes 0 and 1, also carries one large feature.

    ``worker.training.opposing_data.make_opposing_signals``; ``planted_fraction=0`` is the control
    with the same core data.  The generator's ground truth (which training examples carry the
    feature) is kept with the task and stored by the opposing probe so that detection can be scored.
    """

    kind: Literal["opposing_signals"] = "opposing_signals"
    n_train: int = Field(default=4096, ge=16, le=1_000_000)
    n_test: int = Field(default=1024, ge=16, le=1_000_000)
    dim: int = Field(default=32, ge=3, le=4096)
    n_classes: int = Field(default=4, ge=2, le=1000)
    planted_fraction: float = Field(
        default=0.03, ge=0, lt=1, description="examples carrying the planted feature (0: control)"
    )
    planted_scale: float = Field(default=48.0, ge=0, le=1e4, description="its norm")
    separation: float = Field(default=3.0, gt=0, le=1e4, description="norm of each class mean")
    noise: float = Field(default=1.0, ge=0, le=1e4)
    hidden: int = Field(default=64, ge=1, le=8192)
    depth: int = Field(default=2, ge=1, le=8)

    @model_validator(mode="after")
    def _feasible(self) -> OpposingSignalsTask:
        if self.dim <= self.n_classes:
            raise field_error(
                self, "dim", message="must exceed n_classes (the planted direction is orthogonal)"
            )
        n = self.n_train + self.n_test
        planted = round(self.planted_fraction * n)
        if planted - planted // 2 > n // self.n_classes:
            raise field_error(
                self,
                "planted_fraction",
                message=f"{planted} planted examples do not fit in classes 0 and 1 "
                f"({n // self.n_classes} examples each)",
            )
        return self


BUILTIN_TASKS: tuple[type[KindBase], ...] = (
    ModularTask,
    DigitsTask,
    GaussianMixtureTask,
    OpposingSignalsTask,
    DatasetTask,
)
# The installed plugins' tasks join the union at start (server.plugins; docs/plugins.md).
PLUGIN_TASKS = installed_plugins(tuple(task.model_fields["kind"].default for task in BUILTIN_TASKS))
TASKS: tuple[type[KindBase], ...] = BUILTIN_TASKS + tuple(p.schema for p in PLUGIN_TASKS.values())
TASK_KINDS = tuple(task.model_fields["kind"].default for task in TASKS)
TaskConfig = Annotated[reduce(or_, TASKS), Field(discriminator="kind")]


class OptimizerConfig(Strict):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(default=1e-3, gt=0, le=100)
    momentum: float = Field(default=0.0, ge=0, lt=1, description="SGD only")
    weight_decay: float = Field(default=0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine", "warmup_cosine"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in betas):
            raise ValueError("each beta must lie in [0, 1)")
        return betas


class ProbeEntry(Strict):
    """Fields every probe entry has; a probe's config subclasses it."""

    every: int = Field(default=100, ge=1, description="run the probe every this many steps")


HESSIAN_MAX_K = 20
HESSIAN_MAX_BATCH = 8192
HESSIAN_MAX_HVP = 4000


class HessianProbe(ProbeEntry):
    """Hessian spectrum on a fixed probe batch (``worker.probes.hessian``; docs/probes/hessian.md).

    Every probe: the ``k`` largest and ``k`` smallest eigenvalues by Lanczos (and, for Adam/AdamW,
    the top eigenvalue of the preconditioned Hessian); optionally the trace, the spectral density
    and per-layer top eigenvalues.
    """

    k: int = Field(default=5, ge=1, le=HESSIAN_MAX_K, description="eigenvalues at each end")
    batch_size: int = Field(
        default=512,
        ge=1,
        le=HESSIAN_MAX_BATCH,
        description="size of the fixed probe batch (the same training examples at every probe)",
    )
    tol: float = Field(
        default=1e-3, ge=1e-8, le=0.1, description="Lanczos residual tolerance relative to ‖H‖₂"
    )
    trace: bool = Field(default=False, description="Hutchinson/Hutch++ trace and its std. error")
    trace_probes: int = Field(default=30, ge=3, le=1000, description="HVPs spent on the trace")
    density: bool = Field(default=False, description="spectral density (stochastic Lanczos)")
    density_starts: int = Field(default=2, ge=1, le=16, description="random starts")
    density_steps: int = Field(default=48, ge=4, le=200, description="Lanczos steps per start")
    per_layer: bool = Field(default=False, description="top eigenvalue of each layer's block")
    smallest: bool = Field(default=True, description="also the k smallest (hessian.lambda_min)")
    warm_start: bool = Field(
        default=False,
        description="start each probe from the last eigenvectors (cold Lanczos when the "
        "spectrum reorders): cheaper for the top eigenvalue (k=1, smallest off)",
    )
    cold_every: int = Field(
        default=0, ge=0, le=100_000, description="with warm_start: a cold probe every n (0: never)"
    )
    batch_sharpness: int = Field(
        default=0,
        ge=0,
        le=64,
        description="minibatches (of the run's batch size) for hessian.batch_sharpness (0: off)",
    )

    @model_validator(mode="after")
    def _bounded_cost(self) -> HessianProbe:
        if self.max_hvps > HESSIAN_MAX_HVP:
            raise field_error(
                self,
                "density_steps" if self.density else "trace_probes",
                message=f"one Hessian probe could cost up to {self.max_hvps} Hessian-vector "
                f"products, above the limit {HESSIAN_MAX_HVP}: lower trace_probes, "
                "density_starts/steps or batch_sharpness",
            )
        return self

    @property
    def max_hvps(self) -> int:
        """Upper bound of one probe's Hessian-vector products."""
        lanczos = max(300, 20 * self.k)  # the eigenvalue solver's HVP cap (both ends)
        trace = self.trace_probes * self.trace
        density = self.density_starts * self.density_steps * self.density
        return lanczos + trace + density + self.batch_sharpness


OPPOSING_MAX_MONITOR = 65_536


class OpposingProbe(ProbeEntry):
    """Opposing signals (``worker.probes.opposing``; docs/probes/opposing.md, "In the service").

    Every probe: the monitor set's per-example losses (one batched no-grad pass), the groups whose
    loss rose and fell most since the previous probe step, paired by feature direction, and each
    pair's oscillation over the last ``window`` probe steps.  Every step: loss-spike detection on
    the train loss.
    """

    every: int = Field(
        default=49,
        ge=1,
        description="probe interval; odd, so that a period-2 oscillation does not alias away",
    )
    monitor_size: int = Field(
        default=2048, ge=8, le=OPPOSING_MAX_MONITOR, description="monitored training examples"
    )
    k: int = Field(default=32, ge=1, le=1024, description="size of the rising and falling sets")
    window: int = Field(
        default=20, ge=2, le=1000, description="probe steps of a pair's oscillation measure"
    )
    features: Literal["input", "penultimate"] = Field(
        default="input", description="what groups are clustered and paired on"
    )
    threshold: float = Field(default=0.5, gt=0, le=1, description="smallest pair score reported")
    min_cosine: float = Field(default=0.5, gt=-1, lt=1, description="clustering cut")
    min_size: int = Field(default=4, ge=1, le=1024, description="smallest group")

    @model_validator(mode="after")
    def _groups_fit(self) -> OpposingProbe:
        if self.min_size > self.k:
            raise field_error(self, "min_size", message=f"above k ({self.k}): no group could form")
        return self


COLLAPSE_MAX_EXAMPLES = 20_000
COLLAPSE_MAX_LAYERS = 8


ModuleName = Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]


class CollapseProbe(ProbeEntry):
    """Neural collapse NC1–NC4 (``worker.probes.collapse``; docs/probes/collapse.md).

    Two forward passes over the first ``max_examples`` training examples per probe step.
    """

    layers: list[ModuleName] | None = Field(
        default=None,
        max_length=COLLAPSE_MAX_LAYERS,
        description="extra modules (named_modules) whose input gets nc.<layer>.nc1",
    )
    max_examples: int = Field(
        default=2048, ge=10, le=COLLAPSE_MAX_EXAMPLES, description="training examples per pass"
    )
    points_per_class: int = Field(default=50, ge=1, le=500, description="2-D projection points")


GROKKING_MAX_EVAL = 100_000
GROKKING_MAX_NTK_EXAMPLES = 256
GROKKING_MAX_NTK_PROJECTIONS = 64


class GrokkingProbe(ProbeEntry):
    """Grokking detection and progress measures (``worker.probes.grokking``;
    docs/probes/grokking.md, "In the service").

    Every probe: train and test accuracy of θ_s (one no-grad pass over at most ``eval_examples``
    of each split) fed to a ``GrokkingMonitor`` (events ``grokking.memorized`` and
    ``grokking.generalized``), the weight norm and relative change from initialization (total and
    per layer), for modular tasks the Fourier sparsity of the residue embeddings, and with ``ntk``
    the NTK-label alignment on a fixed class-balanced subset.
    """

    threshold: float = Field(
        default=0.95, gt=0, le=1, description="accuracy that counts as memorized / generalized"
    )
    hold: int = Field(
        default=5, ge=1, le=100, description="consecutive probe steps that must stay above it"
    )
    window: int = Field(default=1, ge=1, le=100, description="moving average before the threshold")
    grokking_ratio: float = Field(
        default=5.0, ge=1, le=1000, description="grokking: generalization ≥ ratio × memorization"
    )
    eval_examples: int = Field(
        default=10_000, ge=1, le=GROKKING_MAX_EVAL, description="examples of each split evaluated"
    )
    fourier_k: int = Field(
        default=5, ge=1, le=500, description="top frequencies of the Fourier sparsity (modular)"
    )
    ntk: bool = Field(default=True, description="NTK-label alignment at every probe step")
    ntk_examples: int = Field(
        default=64, ge=4, le=GROKKING_MAX_NTK_EXAMPLES, description="size of the NTK probe subset"
    )
    ntk_per_class: int = Field(
        default=8, ge=1, le=64, description="examples of each class in the NTK probe subset"
    )
    ntk_projections: int = Field(
        default=8,
        ge=1,
        le=GROKKING_MAX_NTK_PROJECTIONS,
        description="random output projections of the NTK estimate",
    )


LANDSCAPE_MAX_RESOLUTION = 51
LANDSCAPE_MAX_EVAL = 8192
LANDSCAPE_MAX_SNAPSHOTS = 200
# single-example forward passes one landscape probe may cost (grid, BatchNorm re-estimation,
# Hessian directions); a 31 x 31 plane on 512 examples is 0.49 M
LANDSCAPE_MAX_EXAMPLE_FORWARDS = 2_000_000
LANDSCAPE_HVP_FORWARDS = 4  # an HVP (double backward) counted as this many forward passes


class LandscapeRefine(Strict):
    """Adaptive refinement of a 2-D surface (``worker.probes.refine``; docs/probes/landscape.md,
    "Adaptive refinement"): a ``coarse`` × ``coarse`` lattice of the grid, subdivided where the
    interpolation error is estimated largest until ``budget`` × resolution² points are spent;
    the rest of the grid is interpolated."""

    coarse: int = Field(
        default=13, ge=3, le=LANDSCAPE_MAX_RESOLUTION, description="starting lattice per axis (odd)"
    )
    budget: float = Field(
        default=0.4, gt=0, le=1, description="fraction of the grid's points evaluated at most"
    )

    @field_validator("coarse")
    @classmethod
    def _odd(cls, coarse: int) -> int:
        if coarse % 2 == 0:
            raise ValueError("coarse must be odd, so that the lattice holds the grid's centre")
        return coarse


class LandscapeProbe(ProbeEntry):
    """Loss landscape through θ_s (``worker.probes.landscape``; docs/probes/landscape.md).

    Every probe: the loss and accuracy on a ``resolution`` (× ``resolution``) grid of offsets in
    ``[-range, range]`` along the directions of ``kind``, on a fixed evaluation subset.
    """

    every: int = Field(default=100, ge=1, description="run the probe every this many steps")
    kind: Literal["random", "hessian", "pca", "interpolation"] = Field(
        default="random",
        description="random: filter-normalized Gaussian; hessian: top Hessian eigenvectors; "
        "pca: principal directions of the weight trajectory; interpolation: θ₀ → θ_s (1-D)",
    )
    dims: Literal[1, 2] = Field(default=2, description="1-D curve or 2-D surface")
    resolution: int = Field(
        default=21,
        ge=3,
        le=LANDSCAPE_MAX_RESOLUTION,
        description="grid points per axis (odd: the centre is θ_s)",
    )
    range: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="half-width of the grid: random, in filter norms; hessian, in weight units; "
        "pca, in units of the trajectory's extent; interpolation, in units of θ_s − θ₀",
    )
    eval_size: int = Field(
        default=256, ge=1, le=LANDSCAPE_MAX_EVAL, description="fixed training examples evaluated"
    )
    bn: Literal["running", "recompute"] = Field(
        default="running",
        description="BatchNorm statistics at each point: running (eval mode) or re-estimated",
    )
    normalization: Literal["filter", "layer", "none"] = Field(
        default="filter", description="random directions: rescaling rule"
    )
    bias_bn: Literal["zero", "weights", "normalize"] = Field(
        default="zero", description="random directions: biases and normalization parameters"
    )
    since: int = Field(default=0, ge=0, description="pca: trajectory snapshots from this step")
    snapshot_every: int | None = Field(
        default=None, ge=1, description="pca: weight snapshot interval (default: every)"
    )
    max_snapshots: int = Field(
        default=50,
        ge=3,
        le=LANDSCAPE_MAX_SNAPSHOTS,
        description="pca: snapshots kept (the trajectory is thinned to half when full)",
    )
    refine: LandscapeRefine | None = Field(
        default=None,
        description="2-D only: evaluate a coarse lattice refined where the loss bends fastest, "
        "at most budget × resolution² points, and interpolate the rest (null: the full grid)",
    )

    @field_validator("resolution")
    @classmethod
    def _odd(cls, resolution: int) -> int:
        if resolution % 2 == 0:
            raise ValueError("resolution must be odd, so that the grid's centre is θ_s")
        return resolution

    @model_validator(mode="after")
    def _bounded_cost(self) -> LandscapeProbe:
        if self.kind == "interpolation" and self.dims != 1:
            raise field_error(self, "dims", message="interpolation is a 1-D path (dims 1)")
        if self.refine is not None:
            self._check_refine(self.refine)
        cost = self.example_forwards
        if cost > LANDSCAPE_MAX_EXAMPLE_FORWARDS:
            raise field_error(
                self,
                "eval_size",
                message=f"one landscape probe could cost up to {cost} single-example forward "
                f"passes, above the limit {LANDSCAPE_MAX_EXAMPLE_FORWARDS}: lower resolution or "
                "eval_size" + (", or use bn 'running'" if self.bn == "recompute" else ""),
            )
        return self

    def _check_refine(self, refine: LandscapeRefine) -> None:
        if self.dims != 2:
            raise field_error(self, "refine", message="refinement is for 2-D surfaces (dims 2)")
        if refine.coarse >= self.resolution:
            raise field_error(
                self, "refine", "coarse", message="coarse must be smaller than resolution"
            )
        if refine.coarse**2 + 5 > refine.budget * self.resolution**2:
            raise field_error(
                self,
                "refine",
                "budget",
                message=f"budget × resolution² must hold the coarse lattice and the centre's "
                f"neighbours ({refine.coarse**2 + 5} points): raise budget or lower coarse",
            )

    @property
    def grid_points(self) -> int:
        """Grid points one probe evaluates at most (a refined surface's budget plus the last
        round's overshoot of at most four points)."""
        if self.refine is None:
            return self.resolution**self.dims
        return min(self.resolution**2, int(self.refine.budget * self.resolution**2) + 4)

    @property
    def example_forwards(self) -> int:
        """Upper bound of one probe's cost in single-example forward passes."""
        per_point = 2 if self.bn == "recompute" else 1
        grid = (self.grid_points + 1) * per_point * self.eval_size
        lanczos = max(300, 20 * 2) + 2  # top_eigenvalues' HVP cap for k = 2, and 2 residuals
        hvps = lanczos * LANDSCAPE_HVP_FORWARDS * self.eval_size
        return grid + (hvps if self.kind == "hessian" else 0)


class ProbesConfig(Strict):
    """One optional entry per probe (absent or null: off).  Unknown names are 422."""

    hessian: HessianProbe | None = None
    opposing: OpposingProbe | None = None
    collapse: CollapseProbe | None = None
    grokking: GrokkingProbe | None = None
    landscape: LandscapeProbe | None = None


def _max_steps_schema(schema: dict[str, Any]) -> None:
    """The limit is a setting (OBS_MAX_STEPS): the published schema states this server's."""
    schema["maximum"] = get_settings().max_steps


class RunConfig(Strict):
    name: str | None = Field(default=None, max_length=200, pattern=PRINTABLE)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    task: TaskConfig = Field(
        default_factory=DigitsTask, json_schema_extra={"default": {"kind": "digits"}}
    )
    model: ModelConfig | None = Field(
        default=None,
        title="Model",
        description="a model from the zoo, checked against the task's data (off: the task's "
        "own model)",
    )
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    batch_size: int | None = Field(default=None, ge=1, description="None: full batch")
    steps: int = Field(default=1000, ge=1, json_schema_extra=_max_steps_schema)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["none", "bf16", "fp16"] = Field(
        default="none",
        title="Mixed precision",
        description="autocast of the training step (fp16 with a gradient scaler, CUDA only); "
        "probes stay in float32",
    )
    compile: bool = Field(
        default=False, title="torch.compile", description="compile the training forward (CUDA)"
    )
    log_every: int = Field(default=10, ge=1)
    checkpoint_every: int = Field(default=500, ge=1)
    train_metrics: Literal["running", "full"] = Field(
        default="running",
        description="running: mean of the minibatch losses since the last log (free; exact for "
        "full batch); full: an extra evaluation pass over the train set",
    )
    eval_max_examples: int = Field(default=10_000, ge=1)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    on_divergence: Literal["stop", "continue"] = Field(
        default="stop",
        description="a non-finite train loss at a log step: stop (the run fails) or keep going",
    )
    keep_checkpoint: bool = Field(
        default=False,
        description="keep the last checkpoint of a completed run (else removed when it ends)",
    )

    @field_validator("task", mode="before")
    @classmethod
    def _installed_kind(cls, task: Any) -> Any:
        """An unknown kind names ``task.kind`` and the installed ones (a plugin not installed
        here would otherwise read as a bare union-tag error on ``task``)."""
        kind = task.get("kind") if isinstance(task, dict) else None
        if isinstance(kind, str) and kind not in TASK_KINDS:
            installed = ", ".join(TASK_KINDS)
            message = f"unknown task kind: the installed tasks are {installed} (GET /api/tasks)"
            raise located_error(cls.__name__, ("kind",), kind, message)
        return task

    @field_validator("steps")
    @classmethod
    def _steps_below_limit(cls, steps: int) -> int:
        limit = get_settings().max_steps
        if steps > limit:
            raise ValueError(f"steps must be at most {limit} (OBS_MAX_STEPS)")
        return steps

    @model_validator(mode="after")
    def _warmup_within_run(self) -> RunConfig:
        optimizer = self.optimizer
        if optimizer.schedule == "warmup_cosine" and optimizer.warmup_steps >= self.steps:
            raise field_error(
                self, "optimizer", "warmup_steps", message=f"must be below steps ({self.steps})"
            )
        check_run(self)
        return self

    @property
    def queue(self) -> str:
        """Celery queue: explicit devices go to their pool, ``auto`` to any worker."""
        return {"cpu": "cpu", "cuda": "gpu", "auto": "any"}[self.device]


class RunCreate(RunConfig):
    """Body of ``POST /api/runs``: a RunConfig."""


class SeriesSummary(BaseModel):
    """Last, min and max of one series of a run (NaN points are left out of min and max)."""

    last: float | None
    last_step: int
    min: float | None
    max: float | None


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    status: str
    origin: str = Field(description="worker: trained by the service; sdk: a user's own script")
    config: dict
    tags: list[str]
    queue: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    step: int
    total_steps: int
    progress: float
    error: str | None
    worker: str | None
    device: str | None
    cancel_requested: bool
    attempts: int
    notes: str = ""
    sweep_id: int | None = Field(default=None, description="the sweep that made the run")
    # per requested series (GET /api/runs?summary=…): from the series summaries, no scan
    summary: dict[str, SeriesSummary] | None = None


class RunUpdate(Strict):
    """Body of ``PATCH /api/runs/{id}``: what may change after submission (the fields given)."""

    tags: list[Tag] | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, max_length=10_000, pattern=r"^[^\x00]*$")


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int


class ProbeCostPublic(BaseModel):
    calls: int = Field(description="probe steps over the run")
    work: dict[str, int] = Field(description="per call: hvps and/or example_forwards (bounds)")
    vectors: int = Field(description="model-sized float32 vectors held at once")
    bytes: int = Field(description="their memory")


class RunCostPublic(BaseModel):
    """What a config will cost (``server.limits``), with the limits it is checked against."""

    parameters: int
    max_parameters: int
    dataset_elements: int
    max_dataset_elements: int
    dataset_bytes: int
    max_dataset_bytes: int
    probes: dict[str, ProbeCostPublic]
    max_probe_bytes: int


class SeriesPoints(BaseModel):
    name: str
    steps: list[int]
    values: list[float | None]
    downsampled: bool
    total_points: int
    wall_times: list[float | None] | None = Field(
        default=None,
        description="Unix time of each point; present only with ``with_time=true``",
    )


class RunSeriesPublic(BaseModel):
    run_id: int
    series: list[SeriesPoints]
    available: list[str] = Field(description="names of every series the run has")


class MetricsPublic(RunSeriesPublic):
    cursor: str = Field(description="pass to /stream?cursor= to continue after these points")


class ComparedMetricsPublic(BaseModel):
    runs: list[RunSeriesPublic] = Field(description="in the order the ids were given")


class EventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    step: int
    kind: str
    payload: dict
    created_at: datetime


class EventsPublic(BaseModel):
    data: list[EventPublic]
    count: int


class ArrayStepsPublic(BaseModel):
    probe: str
    steps: list[int]
    meta: list[dict]


class ArrayResultPublic(BaseModel):
    probe: str
    step: int
    meta: dict
    arrays: dict[str, Any]


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    broker: bool
    workers: list[str]
    embedded: bool


class ErrorPublic(BaseModel):
    """Every error but 422 (``server.api.errors``)."""

    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="'body', 'query', 'path' or 'header', then the field")
    msg: str
    type: str = Field(description="machine-readable reason, e.g. 'greater_than', 'missing'")


class ValidationErrorPublic(BaseModel):
    """422: each problem with the field it concerns; the input is never echoed."""

    detail: list[ValidationIssue]
