"""``RunConfig.model`` at submit: a model that cannot take the task's data, a probe that cannot run
on it, or a CUDA-only option on a CPU is a 422 naming the field; the parameter count reported by
``POST /api/runs/validate`` is the zoo model's."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

DIGITS = {"kind": "digits"}
MIXTURE = {"kind": "gaussian_mixture", "dim": 8, "n_classes": 3}


@pytest.mark.parametrize(
    ("config", "loc", "words"),
    [
        ({"task": DIGITS, "model": {"kind": "vit", "patch_size": 3}}, ["model", "patch_size"],
         "must divide the image's height and width [8, 8]"),
        ({"task": DIGITS, "model": {"kind": "vit", "width": 10, "heads": 3}},
         ["model", "vit", "width"], "multiple of heads (3)"),
        ({"task": MIXTURE, "model": {"kind": "resnet"}}, ["model", "kind"],
         "resnet needs image input"),
        ({"task": DIGITS, "model": {"kind": "cnn", "channels": [4, 4, 4, 4]}},
         ["model", "channels"], "4 stages halve a 8-pixel side"),
        ({"task": DIGITS, "model": {"kind": "resnet", "depth": 19}}, ["model", "resnet", "depth"],
         "must be 18, or 6n + 2"),
        ({"task": DIGITS, "model": {"kind": "gpt"}}, ["model", "kind"],
         "gpt needs next-token data"),
        ({"task": {"kind": "modular", "p": 7}, "model": {"kind": "mlp"}}, ["model", "kind"],
         "mlp needs vector or image input"),
        ({"task": DIGITS, "model": {"kind": "transformer"}}, ["model"],
         "'mlp', 'cnn', 'resnet', 'vit', 'gpt'"),
        ({"device": "cpu", "amp": "fp16"}, ["amp"], "fp16 needs a CUDA device"),
        ({"device": "cpu", "compile": True}, ["compile"], "torch.compile is a CUDA option"),
    ],
)  # fmt: skip
def test_a_model_that_does_not_fit_is_refused_naming_the_field(
    client: TestClient, config: dict, loc: list, words: str
) -> None:
    for path in ("/api/runs", "/api/runs/validate"):
        response = client.post(path, json={**config, "steps": 10})
        assert response.status_code == 422, response.text
        (issue,) = response.json()["detail"]
        assert issue["loc"] == ["body", *loc]
        assert words in issue["msg"]


def test_validate_reports_the_zoo_models_parameters(client: TestClient) -> None:
    model = {"kind": "resnet", "depth": 8, "width": 0.5, "norm": "none"}
    response = client.post("/api/runs/validate", json={"task": DIGITS, "model": model})
    assert response.status_code == 200, response.text
    # stem 1→8 (80), 3 stages × 1 block of two 3×3 convs with bias: 8→8, 16, 32, head 32→10
    convs = (2 * (8 * 8 * 9 + 8)) + (8 * 16 * 9 + 16 + 16 * 16 * 9 + 16) + (16 * 32 * 9 + 32)
    expected = 80 + convs + 32 * 32 * 9 + 32 + 32 * 10 + 10
    assert response.json()["parameters"] == expected


def test_a_zoo_model_above_the_parameter_limit_names_the_model(client: TestClient) -> None:
    model = {"kind": "mlp", "widths": [16384] * 4}
    response = client.post("/api/runs/validate", json={"task": DIGITS, "model": model})
    assert response.status_code == 422
    (issue,) = response.json()["detail"]
    assert issue["loc"] == ["body", "model"]
    assert "(OBS_MAX_PARAMETERS)" in issue["msg"]
