"""The grokking hook through the training loop: live events, progress measures, resume.

The run is the p = 23 configuration of the integration test (docs/probes/grokking.md: it groks,
memorizing within ~100 steps and generalizing some 1,000 steps later), trained through
``worker.training.loop.train`` with the hook built from its config, as the worker does.  Where the
trained curves cross the threshold depends on the CPU's float kernels, so the tests take the event
steps from the straight run and assert the hook's properties around them, never the steps.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from server.presets import PRESETS
from server.schemas import RunConfig
from tests.integration.test_grokking_service import GROKKING
from tests.recording import Recorder
from worker.probe_hooks import build_hooks
from worker.probe_hooks.grokking import SEED_OFFSET, balanced_subset
from worker.probe_hooks.service import build_hook, probe_step
from worker.probes.grokking import (
    GENERALIZED,
    MEMORIZED,
    detect,
    fourier_sparsity,
    ntk_alignment,
    relative_change,
    snapshot,
    weight_norm,
)
from worker.training.checkpoint import CheckpointStore
from worker.training.loop import StepContext, train
from worker.training.tasks import build_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS = 1700


def config(steps: int = STEPS, **probe: object) -> RunConfig:
    """The integration test's run (seed 0), ``steps`` long, probe settings overridden."""
    return RunConfig.model_validate(
        GROKKING
        | {
            "steps": steps,
            "checkpoint_every": 10_000,
            "probes": {"grokking": GROKKING["probes"]["grokking"] | probe},
        }
    )


class Log(Recorder):
    """A Recorder that also keeps the order of the calls: (what, step) for metrics and events."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []
        self.stop_at = stop_at

    def metrics(self, step: int, values: dict[str, float]) -> None:
        super().metrics(step, values)
        self.calls.append(("metrics", step))

    def event(self, step: int, kind: str, payload: dict) -> None:
        super().event(step, kind, payload)
        self.calls.append((kind, step))

    def stop_reason(self, step: int) -> str | None:
        return "interrupted" if self.stop_at is not None and step >= self.stop_at else None


class Snapshot:
    """A hook after the probe: a copy of θ_s at the given steps."""

    name = "snapshot"

    def __init__(self, steps: set[int]) -> None:
        self.steps, self.taken = steps, {}

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step in self.steps:
            self.taken[ctx.step] = copy.deepcopy(ctx.model)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@pytest.fixture(scope="module")
def straight() -> tuple[Log, Snapshot]:
    cfg = config()
    reporter, keep = Log(), Snapshot({0, 600})
    train(cfg, reporter, hooks=[*build_hooks(cfg), keep])
    return reporter, keep


def series(reporter: Recorder, name: str) -> dict[int, float]:
    return {s: v[name] for s, v in sorted(reporter.points.items()) if name in v}


def event_steps(reporter: Recorder) -> tuple[int, int]:
    """The memorization and generalization steps of a run that emitted each event once."""
    ((_, mem),) = [key for key in reporter.events if key[0] == MEMORIZED]
    ((_, gen),) = [key for key in reporter.events if key[0] == GENERALIZED]
    return mem, gen


def test_events_are_emitted_live_at_the_confirming_step(straight: tuple[Log, Snapshot]) -> None:
    reporter, _ = straight
    mem, gen = event_steps(reporter)
    mem_payload, gen_payload = reporter.events[MEMORIZED, mem], reporter.events[GENERALIZED, gen]
    assert mem_payload["detected_at"] == mem + 40 and gen_payload["detected_at"] == gen + 40
    assert gen_payload["delay"] == gen - mem
    assert gen_payload["is_grokking"] is True and gen_payload["memorization_step"] == mem
    # Live: each event is reported right after the hook's metrics of its confirming step, long
    # before the run's last point.
    for kind, payload in ((MEMORIZED, mem_payload), (GENERALIZED, gen_payload)):
        at = reporter.calls.index((kind, payload["detected_at"] - 40))
        assert reporter.calls[at - 1] == ("metrics", payload["detected_at"])
        assert at < reporter.calls.index(("metrics", STEPS))
    # The hook's accuracies are those the loop logs: the offline detection on the logged curves
    # gives the same steps.
    train_acc, test_acc = series(reporter, "train.acc"), series(reporter, "test.acc")
    offline = detect(list(train_acc), list(train_acc.values()), list(test_acc.values()))
    assert (offline.memorization_step, offline.generalization_step) == (mem, gen)


def test_progress_measures_are_the_library_values(straight: tuple[Log, Snapshot]) -> None:
    reporter, keep = straight
    initial, model = snapshot(keep.taken[0]), keep.taken[600]
    got = reporter.points[600]
    norms, change = weight_norm(model), relative_change(model, initial)
    assert got["grok.weight_norm"] == pytest.approx(norms.total, rel=1e-12)
    assert got["grok.relative_change"] == pytest.approx(change.total, rel=1e-12)
    for layer in ("embed", "hidden", "out"):
        assert got[f"grok.weight_norm.{layer}"] == pytest.approx(norms.per_layer[layer], rel=1e-12)
        assert got[f"grok.relative_change.{layer}"] == pytest.approx(
            change.per_layer[layer], rel=1e-12
        )
    assert got["grok.fourier_sparsity"] == pytest.approx(
        fourier_sparsity(model.embed.weight, k=5, p=23).sparsity, rel=1e-12
    )
    task = build_task(config().task, 0)
    x, y = balanced_subset(task.train_x, task.train_y, 32, 4, SEED_OFFSET)  # seed 0 + offset
    assert torch.bincount(y).tolist() == [4] * 8
    want = ntk_alignment(model, x, y, projections=2, seed=0).alignment
    assert got["grok.ntk_alignment"] == pytest.approx(want, rel=1e-9)
    assert sorted(series(reporter, "grok.weight_norm")) == list(range(0, STEPS + 1, 10))


def test_grokked_embeddings_are_far_more_fourier_sparse(straight: tuple[Log, Snapshot]) -> None:
    sparsity = series(straight[0], "grok.fourier_sparsity")
    assert sparsity[0] < 0.6 and sparsity[STEPS] > 0.9
    assert 1 - sparsity[STEPS] < (1 - sparsity[0]) / 5
    alignment = series(straight[0], "grok.ntk_alignment")
    assert alignment[STEPS] > alignment[0] + 0.05


def test_resume_from_a_checkpoint_gives_the_same_events_and_metrics(
    straight: tuple[Log, Snapshot], tmp_path: Path
) -> None:
    """Interrupted after memorization, mid-way to generalization, and resumed: the monitor state
    and θ₀ (rebuilt from the seed) come back from a weights_only checkpoint."""
    cfg = config()
    mem, gen = event_steps(straight[0])
    stop = (mem + 40 + gen) // 20 * 10  # a probe step between the two confirmations
    assert mem + 40 < stop <= gen
    store = CheckpointStore(tmp_path, run_id=1)
    first = Log(stop_at=stop)
    assert train(cfg, first, checkpoints=store, hooks=build_hooks(cfg)).status == "interrupted"
    assert store.load()["hooks"]["grokking"]["points"][-1][0] == stop - 10
    second = Log()
    assert train(cfg, second, checkpoints=store, hooks=build_hooks(cfg)).status == "completed"
    assert set(first.events) == {(MEMORIZED, mem)}
    assert set(second.events) == {(GENERALIZED, gen)}  # memorization is not re-emitted
    assert {**first.events, **second.events} == straight[0].events
    reference = straight[0].points
    for step, values in second.points.items():
        grok = {k: v for k, v in values.items() if k.startswith("grok.")}
        assert grok == pytest.approx({k: reference[step][k] for k in grok}, rel=1e-9), step
    assert min(second.points) == stop and "grok.relative_change" in second.points[stop]


def test_probe_leaves_training_unchanged() -> None:
    """The same run with and without the probe reaches identical weights: the evaluation and
    the NTK touch neither weights, .grad nor the train mode."""
    finals = []
    for probes in ({"grokking": GROKKING["probes"]["grokking"]}, {}):
        cfg = config(steps=60).model_copy(update={"probes": config().probes.model_validate(probes)})
        keep = Snapshot({60})
        train(cfg, Recorder(), hooks=[*build_hooks(cfg), keep])
        finals.append(keep.taken[60].state_dict())
        assert keep.taken[60].training
    for name, value in finals[0].items():
        assert torch.equal(value, finals[1][name]), name


def test_theta0_is_rebuilt_from_the_seed_outside_the_rng_stream(
    straight: tuple[Log, Snapshot],
) -> None:
    """After a resume the hook's first call is at s > 0: θ₀ comes from the task builder."""
    cfg = config()
    task = build_task(cfg.task, cfg.seed)
    hook = build_hook("grokking", cfg, task, torch.device("cpu"))
    ctx = StepContext(700, cfg, task, task.model, None, torch.device("cpu"), Recorder(), 0.01)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    initial = hook.initial(probe_step(ctx))
    assert torch.equal(torch.get_rng_state(), rng)
    for name, value in snapshot(straight[1].taken[0]).items():
        assert torch.equal(initial[name], value), name


def test_weight_decay_zero_memorizes_but_does_not_generalize() -> None:
    cfg = config(steps=1500, ntk=False)
    cfg = cfg.model_copy(update={"optimizer": cfg.optimizer.model_copy(update={"weight_decay": 0})})
    reporter = Recorder()
    train(cfg, reporter, hooks=build_hooks(cfg))
    assert [kind for kind, _ in reporter.events] == [MEMORIZED]
    assert max(series(reporter, "test.acc").values()) < 0.2
    assert "grok.ntk_alignment" not in reporter.points[0]


def test_other_tasks_get_everything_but_the_fourier_sparsity() -> None:
    cfg = RunConfig.model_validate(
        {
            "task": {"kind": "gaussian_mixture", "n_train": 200, "n_test": 100, "hidden": 8},
            "steps": 20,
            "log_every": 10,
            "device": "cpu",
            "probes": {"grokking": {"every": 10, "hold": 1, "ntk_examples": 16}},
        }
    )
    reporter = Recorder()
    train(cfg, reporter, hooks=build_hooks(cfg))
    names = set(reporter.points[10])
    assert {"grok.weight_norm", "grok.relative_change", "grok.ntk_alignment"} <= names
    assert "grok.weight_norm.0" in names and "grok.fourier_sparsity" not in names
    assert (MEMORIZED, 0) not in reporter.events  # chance accuracy at initialization


@pytest.mark.parametrize(
    "probe, field",
    [
        ({"every": 0}, "every"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"hold": 0}, "hold"),
        ({"grokking_ratio": 0.5}, "grokking_ratio"),
        ({"eval_examples": 10**7}, "eval_examples"),
        ({"fourier_k": 0}, "fourier_k"),
        ({"ntk_examples": 10**4}, "ntk_examples"),
        ({"ntk_projections": 1000}, "ntk_projections"),
        ({"ntk_per_class": 0}, "ntk_per_class"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_limits(probe: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        config(**probe)


def test_preset_is_the_reference_configuration_with_the_probe() -> None:
    (preset,) = [p for p in PRESETS if p["name"] == "grokking: modular addition"]
    cfg = RunConfig.model_validate(preset["config"])
    assert cfg.task.p == 97 and cfg.task.train_fraction == 0.4 and cfg.task.model == "mlp"
    assert (cfg.task.embed_dim, cfg.task.hidden, cfg.batch_size) == (128, 512, None)
    opt = cfg.optimizer
    assert (opt.name, opt.lr, opt.weight_decay, opt.betas) == ("adamw", 1e-3, 1.0, (0.9, 0.98))
    assert cfg.probes.grokking is not None and cfg.probes.grokking.every == 100
    (preset,) = [p for p in PRESETS if p["name"].endswith("one-layer transformer")]
    transformer = RunConfig.model_validate(preset["config"])
    task = transformer.task
    assert task.model == "transformer" and transformer.optimizer == opt
    assert (task.p, task.embed_dim, task.heads, task.hidden, task.layer_norm) == (
        97,
        128,
        4,
        512,
        False,
    )
    assert transformer.probes == cfg.probes and transformer.batch_size is None
