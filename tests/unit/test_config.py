"""RunConfig validation: every bad input names its field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.config import get_settings
from server.presets import PRESETS
from server.schemas import RunConfig


def error_locs(data: dict) -> list[tuple]:
    with pytest.raises(ValidationError) as info:
        RunConfig.model_validate(data)
    return [tuple(e["loc"]) for e in info.value.errors()]


def test_defaults_are_valid_and_queue_follows_device() -> None:
    config = RunConfig()
    assert config.task.kind == "digits"
    assert RunConfig(device="cuda").queue == "gpu"
    assert RunConfig(device="cpu").queue == "cpu"
    assert config.queue == "any"


def test_unknown_task_names_the_field() -> None:
    assert error_locs({"task": {"kind": "imagenet"}}) == [("task",)]


@pytest.mark.parametrize("lr", [0, -1e-3])
def test_non_positive_learning_rate(lr: float) -> None:
    assert error_locs({"optimizer": {"lr": lr}}) == [("optimizer", "lr")]


def test_steps_above_configured_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBS_MAX_STEPS", "500")
    get_settings.cache_clear()
    try:
        assert error_locs({"steps": 501}) == [("steps",)]
        assert RunConfig(steps=500).steps == 500
    finally:
        get_settings.cache_clear()


def test_unknown_probe_and_unknown_fields_are_rejected() -> None:
    assert error_locs({"probes": {"telepathy": {"every": 10}}}) == [("probes", "telepathy")]
    assert error_locs({"optimiser": {}}) == [("optimiser",)]


def test_task_specific_rules() -> None:
    assert error_locs({"task": {"kind": "modular", "op": "div", "p": 91}}) == [("task", "modular")]
    assert RunConfig.model_validate({"task": {"kind": "modular", "op": "div", "p": 97}})
    assert error_locs({"task": {"kind": "digits", "model": "resnet"}}) == [
        ("task", "digits", "model")
    ]
    assert error_locs({"optimizer": {"betas": [0.9, 1.0]}}) == [("optimizer", "betas")]


def test_presets_validate() -> None:
    assert len(PRESETS) >= 4
    for preset in PRESETS:
        assert RunConfig.model_validate(preset["config"])
