"""Checkpoints: model, optimizer, schedule, RNG and loop state in one ``torch.save`` file.

Loaded with ``weights_only=True`` only: nothing but tensors and plain containers is ever unpickled.
Writes go to a temporary file and are renamed, so a worker killed mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import torch

from server.config import checkpoint_file

SAVED = "checkpoint.saved"
RESUMED = "run.resumed"


class CheckpointStore:
    def __init__(self, directory: Path, run_id: int) -> None:
        self.path = checkpoint_file(directory, run_id)
        self.label = f"run {run_id}"

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


class EventReporter(Protocol):
    def event(self, step: int, kind: str, payload: dict[str, Any]) -> None: ...


class ReportedCheckpoints(CheckpointStore):
    """A ``CheckpointStore`` whose saves and resumes are run events, for the run's timeline:
    ``checkpoint.saved`` at the step saved and ``run.resumed`` at the step a resume starts from.

    Events are unique on (run, kind, step), so a step replayed after a crash does not repeat
    them: a run resumed twice from the same checkpoint keeps the first ``run.resumed``.
    """

    def __init__(self, directory: Path, run_id: int, reporter: EventReporter) -> None:
        super().__init__(directory, run_id)
        self.reporter = reporter

    def save(self, state: dict[str, Any]) -> None:
        super().save(state)
        self.reporter.event(state["step"], SAVED, {"step": state["step"]})

    def load(self) -> dict[str, Any] | None:
        state = super().load()
        if state is not None:
            self.reporter.event(state["step"], RESUMED, {"from_step": state["step"]})
        return state
