"""The SDK's spool: offline runs, the bound on what waits unsent, and ``sync`` of a spool."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import observatory as obs
from observatory import spool
from observatory.sender import read_values
from tests.sdk_records import SpoolContents, only_file


def test_offline_run_writes_everything_to_the_spool_in_order(tmp_path: Path) -> None:
    run = obs.init(name="offline", config={"a": 1}, mode="offline", spool_dir=tmp_path)
    for step in range(120):
        run.log({"loss": torch.tensor(step / 7), "step": step}, step=step)
    run.event(5, "note", {"why": "test"})
    run.finish()
    contents = SpoolContents(only_file(tmp_path))
    assert contents.header["name"] == "offline" and contents.header["config"] == {"a": 1}
    assert sorted(contents.points) == list(range(120))
    assert all(contents.points[s]["step"] == s for s in range(120))
    assert contents.points[33]["loss"] == float(torch.tensor(33 / 7))  # float32, exactly
    assert contents.events == {("note", 5): {"why": "test"}}
    assert contents.finish == {"status": "completed", "error": None, "step": 119}


def test_batches_hold_at_most_max_points(tmp_path: Path) -> None:
    run = obs.init(mode="offline", spool_dir=tmp_path, max_points=100, flush_seconds=3600)
    run.log({f"m{i}": float(i) for i in range(250)}, step=0)
    run.finish()
    contents = SpoolContents(only_file(tmp_path))
    assert contents.batches == 3 and len(contents.points[0]) == 250


def test_a_full_spool_drops_new_batches_but_keeps_the_finish(tmp_path: Path) -> None:
    run = obs.init(mode="offline", spool_dir=tmp_path, spool_max_bytes=2000, flush_seconds=3600)
    run.log({f"name.{i}": float(i) for i in range(2000)}, step=0)  # far above 2,000 bytes
    run.finish()
    assert run.dropped_points == 2000
    contents = SpoolContents(only_file(tmp_path))
    assert contents.points == {} and contents.finish["status"] == "completed"


def test_a_torn_last_record_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / f"x{spool.SUFFIX}"
    writer = spool.Spool(path, 1 << 20)
    writer.append(spool.INIT, spool.encode({"key": "k"}))
    writer.append(spool.BATCH, spool.encode({"n": 1}))
    writer.close()
    whole = path.read_bytes()
    path.write_bytes(whole[:-3])  # a crash in the middle of the last write
    assert [kind for _, kind, _ in spool.read(path)] == [spool.INIT]


def test_logged_tensors_of_any_dtype_and_shape_are_read_exactly() -> None:
    values = [
        torch.tensor(0.1),  # float32
        torch.tensor([2.5], dtype=torch.float16),
        torch.tensor(7),
        torch.tensor(1.0, requires_grad=True) * 3,  # still attached to a graph
        0.3,
        torch.tensor(1 / 3, dtype=torch.float64),
    ]
    assert read_values(values) == [float(torch.tensor(0.1)), 2.5, 7.0, 3.0, 0.3, 1 / 3]


def test_a_tensor_of_several_elements_is_refused_at_the_call(tmp_path: Path) -> None:
    run = obs.init(mode="offline", spool_dir=tmp_path)
    with pytest.raises(ValueError, match="one element"):
        run.log({"loss": torch.ones(2)}, step=0)
    run.finish()
