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
    assert error_locs({"task": {"kind": "imagenet"}}) == [("task", "kind")]


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
    assert error_locs({"task": {"kind": "modular", "op": "div", "p": 91}}) == [
        ("task", "modular", "p")
    ]
    assert RunConfig.model_validate({"task": {"kind": "modular", "op": "div", "p": 97}})
    assert error_locs({"task": {"kind": "digits", "model": "resnet"}}) == [
        ("task", "digits", "model")
    ]
    assert error_locs({"optimizer": {"betas": [0.9, 1.0]}}) == [("optimizer", "betas")]


def test_presets_validate() -> None:
    assert len(PRESETS) >= 4
    for preset in PRESETS:
        assert RunConfig.model_validate(preset["config"])


TRANSFORMER = {"kind": "modular", "model": "transformer"}


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (
            {"task": {**TRANSFORMER, "embed_dim": 130, "heads": 4}},
            ("task", "modular", "embed_dim"),
        ),
        (
            {"steps": 100, "optimizer": {"schedule": "warmup_cosine", "warmup_steps": 100}},
            ("optimizer", "warmup_steps"),
        ),
        (
            {"task": {"kind": "opposing_signals", "dim": 4, "n_classes": 4}},
            ("task", "opposing_signals", "dim"),
        ),
        (
            {"task": {"kind": "opposing_signals", "planted_fraction": 0.9}},
            ("task", "opposing_signals", "planted_fraction"),
        ),
        ({"probes": {"opposing": {"k": 4, "min_size": 5}}}, ("probes", "opposing", "min_size")),
        (
            {"probes": {"landscape": {"kind": "interpolation", "dims": 2}}},
            ("probes", "landscape", "dims"),
        ),
        (
            {"probes": {"landscape": {"resolution": 51, "eval_size": 8192}}},
            ("probes", "landscape", "eval_size"),
        ),
        (
            {"probes": {"landscape": {"dims": 1, "refine": {}}}},
            ("probes", "landscape", "refine"),
        ),
        (
            {"probes": {"landscape": {"resolution": 11, "refine": {"coarse": 11}}}},
            ("probes", "landscape", "refine", "coarse"),
        ),
        (
            {"probes": {"landscape": {"resolution": 21, "refine": {"coarse": 15}}}},
            ("probes", "landscape", "refine", "budget"),
        ),
        (
            {"probes": {"landscape": {"resolution": 51, "refine": {"coarse": 12}}}},
            ("probes", "landscape", "refine", "coarse"),
        ),
        (
            {
                "probes": {
                    "hessian": {
                        "trace": True,
                        "trace_probes": 1000,
                        "density": True,
                        "density_starts": 16,
                        "density_steps": 200,
                    }
                }
            },
            ("probes", "hessian", "density_steps"),
        ),
    ],
)
def test_cross_field_rules_name_the_field(data: dict, loc: tuple) -> None:
    assert error_locs(data) == [loc]


def test_warmup_shorter_than_the_run_is_valid() -> None:
    optimizer = {"schedule": "warmup_cosine", "warmup_steps": 99}
    assert RunConfig.model_validate({"steps": 100, "optimizer": optimizer})
    # warmup_steps is ignored by the other schedules
    assert RunConfig.model_validate({"steps": 100, "optimizer": {"warmup_steps": 500}})


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"optimizer": {"weight_decay": float("inf")}}, ("optimizer", "weight_decay")),
        ({"optimizer": {"lr": float("nan")}}, ("optimizer", "lr")),
        ({"optimizer": {"betas": [0.9, float("-inf")]}}, ("optimizer", "betas", 1)),
        (
            {"task": {"kind": "gaussian_mixture", "separation": float("inf")}},
            ("task", "gaussian_mixture", "separation"),
        ),
        ({"probes": {"landscape": {"range": float("nan")}}}, ("probes", "landscape", "range")),
    ],
)
def test_non_finite_numbers_are_rejected(data: dict, loc: tuple) -> None:
    """PostgreSQL's JSON has no NaN or Infinity: such a config could not even be stored."""
    assert error_locs(data) == [loc]


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"name": "a\x00b"}, ("name",)),
        ({"name": "\ud800"}, ("name",)),
        ({"tags": ["ok", "t\x00"]}, ("tags", 1)),
        ({"tags": ["\udfff"]}, ("tags", 0)),
        ({"probes": {"collapse": {"layers": ["fc\x00"]}}}, ("probes", "collapse", "layers", 0)),
    ],
)
def test_names_with_nul_or_lone_surrogates_are_rejected(data: dict, loc: tuple) -> None:
    assert error_locs(data) == [loc]


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"seed": "5"}, ("seed",)),
        ({"batch_size": True}, ("batch_size",)),
        ({"optimizer": {"lr": "0.1"}}, ("optimizer", "lr")),
        ({"optimizer": {"betas": ["0.9", 0.99]}}, ("optimizer", "betas")),
        ({"task": {"kind": "digits", "batch_norm": 1}}, ("task", "digits", "batch_norm")),
        ({"task": {"kind": "digits", "batch_norm": "yes"}}, ("task", "digits", "batch_norm")),
        ({"probes": {"landscape": {"dims": True}}}, ("probes", "landscape", "dims")),
        ({"probes": {"hessian": {"trace": "false"}}}, ("probes", "hessian", "trace")),
    ],
)
def test_values_must_have_the_json_type_of_the_schema(data: dict, loc: tuple) -> None:
    """Lax mode would turn "5" and true into numbers: requests the OpenAPI document rejects."""
    assert error_locs(data) == [loc]


def test_integral_floats_are_integers_as_in_json_schema() -> None:
    config = RunConfig.model_validate({"steps": 50.0, "batch_size": 8.0, "seed": 3.0})
    assert (config.steps, config.batch_size, config.seed) == (50, 8, 3)
    assert error_locs({"steps": 50.5}) == [("steps",)]


def test_task_kind_is_required_in_the_published_schema() -> None:
    """The discriminator has a default for Python callers, but a request must name it."""
    tasks = RunConfig.model_json_schema()["$defs"]
    assert all("kind" in tasks[name]["required"] for name in ("DigitsTask", "ModularTask"))
    assert error_locs({"task": {"hidden": 8}}) == [("task",)]
