"""GET /api/runs/{id}/explain?step=: the card the opposing hook stored at a forced loss spike."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.config import Settings, get_settings
from server.db import session_scope
from server.schemas import RunConfig
from server.store import tokens as token_store
from server.tokens import Scope
from tests.recording import ForceSpikes, Recorder, record_and_store
from worker.probe_hooks import build_hooks
from worker.probe_hooks.explain import EXPLAIN

CONFIG = {
    "task": {"kind": "opposing_signals", "n_train": 1024, "n_test": 128},
    "optimizer": {"name": "sgd", "lr": 0.5},
    "batch_size": 128,
    "steps": 45,
    "log_every": 10,
    "seed": 1,
    "device": "cpu",
    "probes": {"opposing": {"every": 5, "monitor_size": 512}},
}
SPIKE = 37


@pytest.fixture
def carded(client: TestClient, settings: Settings) -> tuple[int, Recorder]:
    """A run with the card of a spike forced at step ``SPIKE``, written as the worker would."""
    run_id = client.post("/api/runs", json=CONFIG).json()["id"]
    config = RunConfig.model_validate(CONFIG)
    hooks = [ForceSpikes([SPIKE]), *build_hooks(config)]
    recorder = record_and_store(settings.resolved_database_url, run_id, config, hooks)
    return run_id, recorder


def test_the_card_at_a_spike_and_404_elsewhere(
    client: TestClient, carded: tuple[int, Recorder]
) -> None:
    run_id, recorder = carded
    arrays, meta = recorder.results[EXPLAIN, SPIKE]
    card = client.get(f"/api/runs/{run_id}/explain", params={"step": SPIKE})
    assert card.status_code == 200, card.text
    body = card.json()
    assert (body["step"], body["probe_step"], body["prev_step"]) == (SPIKE, 40, 35)
    assert body["spike"]["loss"] == 50.0 and body["sharpness"]["threshold"] == 4.0
    assert body["sharpness"]["before"]["step"] == 35 and body["sharpness"]["at"]["step"] == 40
    assert len(body["groups"]) == len(meta["groups"]) > 0
    for group, stored, values in zip(
        body["groups"], meta["groups"], arrays["random_alignment"], strict=True
    ):
        assert group["members"] == stored["members"] and group["kind"] == stored["kind"]
        assert group["alignment"] == pytest.approx(stored["alignment"])
        assert group["random_alignment"]["values"] == pytest.approx(values.tolist())
        assert group["random_alignment"]["n"] == len(values)
    # the spike is on the events too, where the timeline finds it
    events = client.get(f"/api/runs/{run_id}/events", params={"kind": "loss.spike"}).json()
    assert [e["step"] for e in events["data"]] == [SPIKE]

    missing = client.get(f"/api/runs/{run_id}/explain", params={"step": SPIKE + 1})
    assert missing.status_code == 404
    assert missing.json()["detail"].startswith(
        f"run {run_id} has no explanation at step {SPIKE + 1}: cards are stored at the steps of "
        "loss.spike events"
    )
    assert client.get("/api/runs/999/explain", params={"step": SPIKE}).status_code == 404


@pytest.mark.parametrize("params", [{}, {"step": -1}, {"step": "x"}, {"step": 2**63}])
def test_a_bad_step_is_422_naming_it(client: TestClient, params: dict) -> None:
    run_id = client.post("/api/runs", json=CONFIG).json()["id"]
    response = client.get(f"/api/runs/{run_id}/explain", params=params)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["query", "step"]]


def test_the_card_needs_a_read_token_when_auth_is_required(
    client: TestClient, carded: tuple[int, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, _ = carded
    monkeypatch.setenv("OBS_AUTH", "required")
    get_settings.cache_clear()
    url = f"/api/runs/{run_id}/explain?step={SPIKE}"
    try:
        assert client.get(url).status_code == 401
        with session_scope(get_settings().resolved_database_url) as session:
            secret = token_store.create_token(session, name="reader", scope=Scope.read)[1]
        assert client.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    finally:
        get_settings.cache_clear()
