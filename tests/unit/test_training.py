"""The training loop on tiny tasks, through an in-memory reporter (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from server.schemas import RunConfig
from worker.training.checkpoint import CheckpointStore
from worker.training.loop import Outcome, train
from worker.training.tasks import build_task


class MemoryReporter:
    def __init__(self, stop_at: int | None = None, reason: str = "cancelled") -> None:
        self.points: dict[int, dict[str, float]] = {}
        self.stop_at, self.reason = stop_at, reason
        self.flushes = 0

    def metrics(self, step: int, values: dict[str, float]) -> None:
        assert step not in self.points, "a step was logged twice"
        self.points[step] = values

    def event(self, step: int, kind: str, payload: dict) -> None:
        raise AssertionError("no probe configured, no event expected")

    def arrays(self, probe: str, step: int, arrays: dict, meta: dict) -> None:
        raise AssertionError("no probe configured, no arrays expected")

    def flush(self) -> None:
        self.flushes += 1

    def stop_reason(self, step: int) -> str | None:
        return self.reason if self.stop_at is not None and step >= self.stop_at else None


def config(**overrides) -> RunConfig:  # noqa: ANN003
    base = {
        "task": {"kind": "gaussian_mixture", "n_train": 256, "n_test": 128, "hidden": 16},
        "steps": 60,
        "log_every": 10,
        "seed": 3,
        "device": "cpu",
        "optimizer": {"name": "adam", "lr": 0.01},
    }
    return RunConfig.model_validate({**base, **overrides})


def test_logs_every_interval_and_learns() -> None:
    reporter = MemoryReporter()
    outcome = train(config(), reporter)
    assert outcome == Outcome("completed", 60, {"parameters": outcome.extra["parameters"]})
    assert sorted(reporter.points) == [0, 10, 20, 30, 40, 50, 60]
    first, last = reporter.points[0], reporter.points[60]
    assert set(first) == {
        "train.loss",
        "train.acc",
        "test.loss",
        "test.acc",
        "lr",
        "grad_norm",
        "weight_norm",
    }
    assert last["train.loss"] < 0.5 * first["train.loss"]
    assert last["test.acc"] > 0.8 > first["test.acc"]
    assert first["lr"] == pytest.approx(0.01)


def test_full_batch_running_train_loss_is_the_exact_loss_of_the_weights() -> None:
    running, full = MemoryReporter(), MemoryReporter()
    train(config(), running)
    train(config(train_metrics="full"), full)
    for step in running.points:
        assert running.points[step]["train.loss"] == pytest.approx(
            full.points[step]["train.loss"], rel=1e-5
        )


def test_same_seed_same_run_other_seed_other_run() -> None:
    a, b, c = MemoryReporter(), MemoryReporter(), MemoryReporter()
    train(config(batch_size=32), a)
    train(config(batch_size=32), b)
    train(config(batch_size=32, seed=4), c)
    assert a.points == b.points
    assert a.points[60]["train.loss"] != c.points[60]["train.loss"]


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_from_checkpoint_replays_exactly(tmp_path: Path, optimizer: str) -> None:
    overrides = {
        "batch_size": 48,
        "checkpoint_every": 20,
        "log_every": 5,
        "optimizer": {
            "name": optimizer,
            "lr": 0.05,
            "momentum": 0.5 if optimizer == "sgd" else 0,
            "weight_decay": 0.01,
            "schedule": "cosine",
        },
    }
    straight = MemoryReporter()
    train(config(**overrides), straight)

    store = CheckpointStore(tmp_path, run_id=1)
    interrupted = MemoryReporter(stop_at=33, reason="interrupted")
    assert train(config(**overrides), interrupted, checkpoints=store).status == "interrupted"
    assert store.load()["step"] == 33  # an interruption checkpoints where it stops
    resumed = MemoryReporter()
    assert train(config(**overrides), resumed, checkpoints=store).status == "completed"
    assert min(resumed.points) == 35
    merged = {**interrupted.points, **resumed.points}
    assert merged.keys() == straight.points.keys()
    for step, values in straight.points.items():
        assert merged[step] == pytest.approx(values, rel=1e-6), step


def test_cancel_stops_at_once_and_parameter_limit_is_enforced() -> None:
    reporter = MemoryReporter(stop_at=25)
    assert train(config(), reporter).status == "cancelled"
    assert max(reporter.points) == 20
    with pytest.raises(ValueError, match="parameters, above the limit"):
        train(config(), MemoryReporter(), max_parameters=100)


@pytest.mark.parametrize(
    "task",
    [
        {"kind": "modular", "p": 11, "op": "div", "embed_dim": 8, "hidden": 16},
        {"kind": "modular", "p": 7, "op": "poly", "embed_dim": 8, "hidden": 16},
        {"kind": "digits", "model": "cnn", "hidden": 4},
        {"kind": "digits", "model": "mlp", "hidden": 8, "train_size": 100},
        {"kind": "opposing_signals", "n_train": 64, "n_test": 16, "dim": 8, "hidden": 8},
    ],
)
def test_every_task_trains(task: dict) -> None:
    reporter = MemoryReporter()
    train(config(task=task, steps=5, log_every=5), reporter)
    assert sorted(reporter.points) == [0, 5]


def test_modular_labels_are_the_operation() -> None:
    from server.schemas import ModularTask

    task = build_task(ModularTask(p=13, op="div", train_fraction=0.5, embed_dim=4, hidden=4), 0)
    x = torch.cat([task.train_x, task.test_x])
    y = torch.cat([task.train_y, task.test_y])
    assert len(y) == 13 * 12
    assert all((int(yy) * int(b)) % 13 == int(a) for (a, b), yy in zip(x.tolist(), y, strict=True))
