"""How a run ends: a diverged run fails (unless its config keeps going), and a finished run's
checkpoint is removed unless a completed run asked to keep it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from server.config import Settings
from server.db import get_sessionmaker
from server.models import Run
from server.schemas import RunConfig
from server.store.runs import create_run
from tests.conftest import wait_for
from tests.recording import Recorder
from worker.runner import execute_run
from worker.training.loop import Outcome, StepContext, train

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # notifications are best effort; nothing listens
BASE = {
    "task": {"kind": "gaussian_mixture", "n_train": 128, "n_test": 64, "hidden": 8},
    "batch_size": 32,
    "steps": 30,
    "log_every": 5,
    "device": "cpu",
}


class PoisonAt:
    """A loop hook that turns the weights into NaN at one step: a forced divergence."""

    name = "poison"

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, ctx: StepContext) -> None:
        if ctx.step == self.step:
            with torch.no_grad():
                next(ctx.model.parameters()).fill_(float("nan"))

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def test_a_diverged_run_fails_at_the_next_log_step_with_an_event() -> None:
    recorder = Recorder()
    outcome = train(RunConfig.model_validate(BASE), recorder, hooks=[PoisonAt(12)])
    assert outcome == Outcome("failed", 15, {"error": "diverged at step 15 (loss=nan)"})
    assert recorder.events == {("run.diverged", 15): {"loss": "nan"}}
    assert max(recorder.points) == 15  # the diverged step is logged, nothing after it


def test_a_run_that_opts_in_keeps_training_after_divergence() -> None:
    recorder = Recorder()
    config = RunConfig.model_validate({**BASE, "on_divergence": "continue"})
    outcome = train(config, recorder, hooks=[PoisonAt(12)])
    assert outcome.status == "completed" and outcome.step == 30 and not recorder.events
    assert torch.isnan(torch.tensor(recorder.points[30]["train.loss"]))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("keep", [False, True])
def test_a_completed_run_keeps_its_checkpoint_only_when_asked(
    db_url: str, tmp_path: Path, keep: bool
) -> None:
    settings = Settings(
        database_url=db_url, broker_url=UNREACHABLE_REDIS, checkpoint_dir=tmp_path / "ckpt"
    )
    config = RunConfig.model_validate({**BASE, "checkpoint_every": 10, "keep_checkpoint": keep})
    with get_sessionmaker(db_url)() as session:
        run_id = create_run(session, config=config).id
        session.commit()
    assert execute_run(run_id, settings, "w1") == "completed"
    path = settings.checkpoint_path(run_id)
    assert path.exists() == keep
    if keep:
        assert torch.load(path, weights_only=True)["step"] == 30


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failed_run_leaves_no_checkpoint(db_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=db_url,
        broker_url=UNREACHABLE_REDIS,
        checkpoint_dir=tmp_path / "ckpt",
        max_parameters=10,  # the worker's own check fails the run after it started
    )
    config = RunConfig.model_validate({**BASE, "keep_checkpoint": True})
    with get_sessionmaker(db_url)() as session:
        run_id = create_run(session, config=config).id
        session.commit()
    settings.checkpoint_path(run_id).parent.mkdir(parents=True)
    settings.checkpoint_path(run_id).write_bytes(b"from an earlier attempt")
    assert execute_run(run_id, settings, "w1") == "failed"
    assert not settings.checkpoint_path(run_id).exists()
    with get_sessionmaker(db_url)() as session:
        assert "above the limit" in session.get(Run, run_id).error


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_run_taken_over_by_another_worker_keeps_its_checkpoint(
    db_url: str, tmp_path: Path
) -> None:
    """A worker that lost its lease stops; the new holder resumes from the checkpoint."""
    settings = Settings(
        database_url=db_url,
        broker_url=UNREACHABLE_REDIS,
        checkpoint_dir=tmp_path / "ckpt",
        heartbeat_seconds=0.05,
    )
    config = RunConfig.model_validate({**BASE, "steps": 1_000_000, "checkpoint_every": 10})
    with get_sessionmaker(db_url)() as session:
        run_id = create_run(session, config=config).id
        session.commit()
    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(execute_run, run_id, settings, "w1")
        wait_for(settings.checkpoint_path(run_id).exists, 60, "a checkpoint")
        with get_sessionmaker(db_url)() as session:
            session.get(Run, run_id).worker = "w2"  # as w2's claim after w1's lease ran out
            session.commit()
        assert outcome.result(timeout=60) == "cancelled"
    assert settings.checkpoint_path(run_id).exists()
    with get_sessionmaker(db_url)() as session:
        assert session.get(Run, run_id).status == "running"  # w2's, untouched
