"""No input is a 500: out-of-range ids and steps, NUL bytes, non-finite numbers, lone surrogates,
malformed bodies — on SQLite and on PostgreSQL, whose errors differ (NumericValueOutOfRange, NUL in
text).  Every 422 has one shape and echoes no input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.schemas import ErrorPublic, ValidationErrorPublic

SMALL = {"task": {"kind": "gaussian_mixture"}, "steps": 20}
RUN = "{run}"  # replaced by the id of a queued run
BIG_IDS = [2**31, 2**63, 10**30]
RUN_ROUTES = [
    ("GET", ""),
    ("POST", "/cancel"),
    ("DELETE", ""),
    ("GET", "/metrics"),
    ("GET", "/events"),
    ("GET", "/export.csv"),
    ("GET", "/stream"),
    ("GET", "/arrays/hessian"),
    ("GET", "/spectra"),
    ("GET", "/landscapes"),
    ("GET", "/outliers"),
    ("GET", "/examples/0/loss"),
]
BIG_STEPS = [
    "/spectra/{step}",
    "/landscapes/{step}",
    "/arrays/hessian/{step}",
    "/outliers/{step}",
    "/examples/{step}/loss",
]
BAD_QUERIES = [  # (path under the run, query, the parameter named in loc)
    ("/metrics", f"since_step={2**63}", "since_step"),
    ("/metrics", "names=train_loss,a%00b", "names"),
    ("/metrics", "max_points=2", "max_points"),
    ("/outliers", f"since_step={2**63}", "since_step"),
    ("/examples/0/loss", "max_points=3", "max_points"),
    ("/events", f"after_id={2**31}", "after_id"),
    ("/events", "kind=grokking%00", "kind"),
    ("/events", "after_id=x&after_id=3", "after_id"),  # FastAPI alone would keep the last
    ("/metrics", "since_step=1&since_step=2", "since_step"),
]
BAD_BODIES = [  # (raw JSON text, loc)
    ('{"name": "a\\u0000b"}', ["body", "name"]),
    ('{"tags": ["x\\u0000"]}', ["body", "tags", 0]),
    ('{"optimizer": {"weight_decay": Infinity}}', ["body", "optimizer", "weight_decay"]),
    ('{"optimizer": {"lr": NaN}}', ["body", "optimizer", "lr"]),
    ('{"optimizer": {"betas": [0.9, -Infinity]}}', ["body", "optimizer", "betas", 1]),
    ('{"name": "\\ud800"}', ["body", "name"]),
    ('{"device": "\\ud800"}', ["body", "device"]),
    ('{"\\ud800": 1}', ["body"]),
    ('{"task": {"kind": "\\udfff"}}', ["body", "task", "kind"]),
    ('{"steps": 1e400}', ["body", "steps"]),
]


def assert_validation_error(response, loc: list | None = None) -> None:  # noqa: ANN001
    assert response.status_code == 422, response.text
    body = ValidationErrorPublic.model_validate(response.json())
    assert body.model_dump() == response.json()  # loc, msg, type only: no input, ctx or url
    if loc is not None:
        assert [issue.loc for issue in body.detail] == [loc], response.text


@pytest.fixture
def run_id(db_client: TestClient) -> int:
    response = db_client.post("/api/runs", json=SMALL)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.parametrize(("method", "route"), RUN_ROUTES)
def test_out_of_range_run_ids_are_404(db_client: TestClient, method: str, route: str) -> None:
    for big in BIG_IDS:
        response = db_client.request(method, f"/api/runs/{big}{route}")
        assert response.status_code == 404, (big, response.text)
        assert ErrorPublic.model_validate(response.json()).detail == f"run {big} not found"


def test_out_of_range_steps_are_404(db_client: TestClient, run_id: int) -> None:
    for route in BIG_STEPS:
        response = db_client.get(f"/api/runs/{run_id}" + route.format(step=2**63))
        assert response.status_code == 404, (route, response.text)
        ErrorPublic.model_validate(response.json())


@pytest.mark.parametrize(("route", "query", "name"), BAD_QUERIES)
def test_bad_query_parameters_are_422_naming_them(
    db_client: TestClient, run_id: int, route: str, query: str, name: str
) -> None:
    response = db_client.get(f"/api/runs/{run_id}{route}?{query}")
    assert_validation_error(response)
    assert {tuple(issue["loc"][:2]) for issue in response.json()["detail"]} == {("query", name)}


@pytest.mark.parametrize("query", [f"offset={2**63}", "tag=a%00", "status=%00"])
def test_bad_list_parameters_are_422(db_client: TestClient, query: str) -> None:
    assert_validation_error(db_client.get(f"/api/runs?{query}"))


@pytest.mark.parametrize(("text", "loc"), BAD_BODIES)
def test_bad_bodies_are_422_naming_the_field(db_client: TestClient, text: str, loc: list) -> None:
    response = db_client.post(
        "/api/runs", content=text.encode(), headers={"Content-Type": "application/json"}
    )
    assert_validation_error(response, loc)
    assert db_client.get("/api/runs").json()["count"] == 0


@pytest.mark.parametrize("body", [b'{"name": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000])
def test_a_body_that_cannot_be_parsed_is_422(db_client: TestClient, body: bytes) -> None:
    """Not UTF-8, or nested deeper than the parser's recursion: FastAPI answered 400."""
    response = db_client.post(
        "/api/runs", content=body, headers={"Content-Type": "application/json"}
    )
    assert_validation_error(response, ["body"])


def test_errors_do_not_echo_the_body(db_client: TestClient) -> None:
    huge = "x" * 2_000_000
    response = db_client.post("/api/runs", json={**SMALL, "name": huge, "device": huge})
    assert_validation_error(response)
    assert len(response.content) < 2000
    assert {tuple(i["loc"]) for i in response.json()["detail"]} == {
        ("body", "name"),
        ("body", "device"),
    }


def test_list_parameters_may_repeat(db_client: TestClient, run_id: int) -> None:
    response = db_client.get(f"/api/runs/{run_id}/metrics?names=a&names=b,c")
    assert response.status_code == 200, response.text
    assert [s["name"] for s in response.json()["series"]] == ["a", "b", "c"]
