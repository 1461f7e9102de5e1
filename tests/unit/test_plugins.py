"""Task plugins (``server.plugins``): discovery from real distribution metadata written in the
test, broken and colliding plugins skipped with their reason, and the installed example plugin
(examples/observatory-plugin-example) through the schema, the limits and the worker's builder."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

import pytest
import torch
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from server.config import Settings
from server.limits import check_limits, count_parameters, dataset_size
from server.plugins import GROUP, load_plugins
from server.schemas import BUILTIN_TASKS, PLUGIN_TASKS, TASK_KINDS, RunConfig
from worker.training.tasks import build_task

BUILTIN_KINDS = tuple(task.model_fields["kind"].default for task in BUILTIN_TASKS)
SCHEMA_MODULE = """
from typing import Literal
from server.task_base import PluginTask

class Schema(PluginTask):
    kind: Literal["{kind}"] = "{kind}"
    width: int = 3

    def parameter_count(self) -> int:
        return self.width

    def dataset_size(self) -> tuple[int, int]:
        return 0, 0

SCHEMA = Schema
BUILDER = "{module}:build"

def build(task, seed):
    return "not a Task"
"""
Distribute = Callable[..., list[EntryPoint]]


@pytest.fixture
def distribute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Distribute]:
    """Writes a distribution (its modules and ``*.dist-info`` with entry points) under tmp_path
    and returns the entry points of group ``observatory.tasks`` that importlib reads from it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def make(name: str, modules: dict[str, str], entries: dict[str, str]) -> list[EntryPoint]:
        for module, source in modules.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            written.append(module)
        info = tmp_path / f"{name.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        lines = "".join(f"{key} = {value}\n" for key, value in entries.items())
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")
        (dist,) = [d for d in distributions(path=[str(tmp_path)]) if d.name == name]
        return list(dist.entry_points.select(group=GROUP))

    yield make
    for module in written:
        sys.modules.pop(module, None)


def schema_module(kind: str, module: str) -> str:
    return SCHEMA_MODULE.format(kind=kind, module=module)


def test_discovers_a_plugin_with_its_distribution(distribute: Distribute) -> None:
    modules = {"lab_one": schema_module("lab_one", "lab_one")}
    found = distribute("lab-tasks", modules, {"one": "lab_one"})
    plugins = load_plugins(found, BUILTIN_KINDS)
    assert list(plugins) == ["lab_one"]
    plugin = plugins["lab_one"]
    assert (plugin.source, plugin.entry_point) == ("lab-tasks", "one")
    assert plugin.builder == "lab_one:build"
    assert plugin.schema.model_validate({"kind": "lab_one", "width": 5}).parameter_count() == 5


BROKEN = {
    "import": ("raise RuntimeError('no GPU driver here')", "importing lab_broken failed"),
    "schema": ("SCHEMA = dict\nBUILDER = 'x:y'", "SCHEMA must be a subclass of"),
    "abstract": (
        "from typing import Literal\nfrom server.task_base import PluginTask\n"
        "class S(PluginTask):\n    kind: Literal['half'] = 'half'\n"
        "    def dataset_size(self):\n        return 0, 0\n"
        "SCHEMA = S\nBUILDER = 'x:y'",
        "SCHEMA does not implement parameter_count",
    ),
    "builder": (schema_module("lab_b", "x").replace('"x:build"', "print"), "BUILDER must be"),
    "kind": (schema_module("Bad Kind", "x"), "must match"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_plugin_is_skipped_with_its_reason(
    case: str, distribute: Distribute, caplog: pytest.LogCaptureFixture
) -> None:
    source, reason = BROKEN[case]
    modules = {"lab_broken": source, "lab_fine": schema_module("lab_fine", "lab_fine")}
    found = distribute("lab-tasks", modules, {"broken": "lab_broken", "fine": "lab_fine"})
    with caplog.at_level(logging.ERROR, logger="server.plugins"):
        plugins = load_plugins(found, BUILTIN_KINDS)
    assert list(plugins) == ["lab_fine"]  # the others still load
    (record,) = caplog.records
    assert "'broken' (lab_broken) skipped" in record.getMessage()
    assert reason in record.getMessage()


def test_a_builtin_kind_keeps_the_builtin(
    distribute: Distribute, caplog: pytest.LogCaptureFixture
) -> None:
    found = distribute("lab-tasks", {"lab_d": schema_module("digits", "lab_d")}, {"d": "lab_d"})
    with caplog.at_level(logging.ERROR, logger="server.plugins"):
        assert load_plugins(found, BUILTIN_KINDS) == {}
    assert "kind 'digits' is a built-in task" in caplog.text


def test_a_kind_two_plugins_claim_is_skipped_in_both(
    distribute: Distribute, caplog: pytest.LogCaptureFixture
) -> None:
    first = distribute("lab-a", {"lab_a": schema_module("shared", "lab_a")}, {"s": "lab_a"})
    second = distribute("lab-b", {"lab_b": schema_module("shared", "lab_b")}, {"s": "lab_b"})
    with caplog.at_level(logging.ERROR, logger="server.plugins"):
        assert load_plugins(first + second, BUILTIN_KINDS) == {}
    assert "kind 'shared' is also registered by lab-b" in caplog.text
    assert "kind 'shared' is also registered by lab-a" in caplog.text


def test_a_builder_must_return_a_task(
    distribute: Distribute, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = distribute("lab-tasks", {"lab_t": schema_module("lab_t", "lab_t")}, {"t": "lab_t"})
    plugin = load_plugins(found, BUILTIN_KINDS)["lab_t"]
    monkeypatch.setitem(PLUGIN_TASKS, "lab_t", plugin)
    with pytest.raises(TypeError, match="returned str, not a Task"):
        build_task(plugin.schema(), seed=0)


def test_unknown_kind_lists_the_installed_ones() -> None:
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate({"task": {"kind": "imagenet"}})
    (error,) = info.value.errors()
    assert error["loc"] == ("task", "kind")
    assert "sparse_parity" in error["msg"] and "digits" in error["msg"]


# The example plugin, installed (editable) by scripts/setup.sh.
PARITY = {"kind": "sparse_parity", "n_bits": 8, "k": 3, "n_train": 200, "n_test": 40, "hidden": 5}


def test_the_example_plugin_is_installed_and_limits_read_its_counts() -> None:
    assert TASK_KINDS[-1] == "sparse_parity"
    assert PLUGIN_TASKS["sparse_parity"].source == "observatory-plugin-example"
    config = RunConfig.model_validate({"task": PARITY})
    built = build_task(config.task, seed=4)
    assert count_parameters(config) == sum(p.numel() for p in built.model.parameters())
    tensors = (built.train_x, built.train_y, built.test_x, built.test_y)
    size = sum(t.numel() * t.element_size() for t in tensors)
    assert dataset_size(config) == (sum(t.numel() for t in tensors), size)


def test_a_zoo_model_trains_on_the_plugin_data_it_states() -> None:
    model = {"kind": "mlp", "widths": [6, 4], "norm": "layernorm"}
    config = RunConfig.model_validate({"task": PARITY, "model": model})
    built = build_task(config.task, config.seed, config.model)
    assert count_parameters(config) == sum(p.numel() for p in built.model.parameters())
    assert built.model(built.test_x).shape == (40, 2)
    image = {"kind": "resnet", "depth": 20}  # takes images; the plugin states vectors
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate({"task": PARITY, "model": image})
    (error,) = info.value.errors()
    assert error["loc"] == ("model", "kind") and "needs image input" in error["msg"]


def test_the_example_labels_are_the_parity_of_exactly_one_k_subset() -> None:
    task = build_task(RunConfig.model_validate({"task": PARITY}).task, seed=4)
    bits = torch.cat([task.train_x, task.test_x])
    labels = torch.cat([task.train_y, task.test_y])
    assert set(bits.unique().tolist()) == {-1.0, 1.0}
    explains = [
        subset
        for subset in itertools.combinations(range(8), 3)
        if torch.equal((bits[:, list(subset)].prod(1) < 0).long(), labels)
    ]
    assert len(explains) == 1


def test_the_example_plugin_names_its_bad_field() -> None:
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate({"task": {**PARITY, "k": 9}})
    assert [e["loc"] for e in info.value.errors()] == [("task", "sparse_parity", "k")]


def test_the_api_process_imports_the_plugin_schemas_without_torch() -> None:
    code = (
        "import sys; import server.app; from server.schemas import TASK_KINDS; "
        "assert 'sparse_parity' in TASK_KINDS; assert 'torch' not in sys.modules, 'torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("method", ["parameter_count", "dataset_size", "data_spec"])
def test_a_plugin_bug_at_submit_is_a_422_naming_its_task(
    method: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    schema = PLUGIN_TASKS["sparse_parity"].schema
    monkeypatch.setattr(schema, method, lambda self: 1 / 0)
    with pytest.raises((ValidationError, RequestValidationError)) as info:
        check_limits(RunConfig.model_validate({"task": PARITY}), Settings())
    assert "the plugin of task 'sparse_parity' could not" in str(info.value)
    assert "ZeroDivisionError" in caplog.text
