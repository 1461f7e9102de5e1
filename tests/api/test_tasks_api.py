"""``GET /api/tasks`` lists the built-in tasks and the installed example plugin's
(examples/observatory-plugin-example) with their JSON schema; a plugin run is submitted, checked
against the limits and refused with a 422 that names its field, like a built-in one."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.test_runs_api import queued_messages

PARITY = {"kind": "sparse_parity", "n_bits": 12, "k": 3, "hidden": 16}


def test_lists_builtin_and_plugin_tasks_with_their_schema(client: TestClient) -> None:
    response = client.get("/api/tasks")
    assert response.status_code == 200, response.text
    body = response.json()
    tasks = {task["kind"]: task for task in body["data"]}
    assert body["count"] == len(body["data"])
    assert list(tasks)[-1] == "sparse_parity"  # after the built-in ones
    assert {"modular", "digits", "gaussian_mixture", "opposing_signals"} < set(tasks)
    assert {task["source"] for task in body["data"][:-1]} == {"builtin"}
    parity = tasks["sparse_parity"]
    assert parity["source"] == "observatory-plugin-example"
    assert parity["title"] == "Sparse parity" and "Barak et al. 2022" in parity["description"]
    schema = parity["json_schema"]
    assert schema["required"] == ["kind"]
    assert schema["properties"]["k"] == {
        "default": 3, "description": "relevant bits k (the parity's degree)", "maximum": 20,
        "minimum": 1, "title": "K", "type": "integer",
    }  # fmt: skip
    # the run config's schema (the form's) holds the same task in its union
    mapping = client.get("/api/schema/run-config").json()["properties"]["task"]["discriminator"]
    assert set(mapping["mapping"]) == set(tasks)


def test_a_plugin_run_is_submitted_and_queued(client: TestClient, settings: object) -> None:
    response = client.post("/api/runs", json={"task": PARITY, "steps": 10})
    assert response.status_code == 201, response.text
    assert response.json()["config"]["task"] == {**PARITY, "n_train": 1000, "n_test": 1000,
                                                 "depth": 1}  # fmt: skip
    assert queued_messages(settings) == 1
    cost = client.post("/api/runs/validate", json={"task": PARITY}).json()
    assert cost["parameters"] == (12 * 16 + 16) + (16 * 2 + 2)
    assert cost["dataset_elements"] == 2000 * 13


def test_a_bad_plugin_field_is_422_naming_it(client: TestClient, settings: object) -> None:
    for task, loc, words in (
        ({**PARITY, "k": 13}, ["body", "task", "sparse_parity", "k"], "at most n_bits (12)"),
        ({**PARITY, "hidden": "8"}, ["body", "task", "sparse_parity", "hidden"], "an integer"),
        ({**PARITY, "depth": 0}, ["body", "task", "sparse_parity", "depth"], "greater than"),
        ({**PARITY, "bits": 3}, ["body", "task", "sparse_parity", "bits"], "not permitted"),
        ({"kind": "parity"}, ["body", "task", "kind"], "installed tasks are modular"),
        # limits apply: 1,000 x 16,384 + 16,384 x 16,384 x 7 parameters
        ({**PARITY, "n_bits": 1000, "hidden": 16384, "depth": 8}, ["body", "task"],
         "(OBS_MAX_PARAMETERS)"),
    ):  # fmt: skip
        response = client.post("/api/runs", json={"task": task, "steps": 10})
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == loc and words in error["msg"], error
    assert queued_messages(settings) == 0
