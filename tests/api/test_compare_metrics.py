"""``GET /api/metrics?runs=…``: the series of several runs in one request (the run page's
comparison, issue 15) are those of ``/runs/{id}/metrics``, run by run, on both databases; ids
are validated (422 naming ``runs``), an unknown or out-of-range run is a 404 naming it, and a
token is needed as for the per-run endpoint."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from server.api.metrics import MAX_COMPARED
from server.store.metrics import Point, write_points
from server.tokens import Scope
from tests.api.test_runs_api import SMALL
from tests.api.test_security_api import Mint, bearer, mint  # noqa: F401 - mint: a fixture


def seed(client: TestClient, url: str, series: dict[str, list[tuple[int, float]]]) -> int:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    engine = create_engine(url)
    with engine.begin() as connection:
        points = [Point(n, s, v, 1e9 + s) for n, pts in series.items() for s, v in pts]
        write_points(connection, run_id=run_id, points=points)
    engine.dispose()
    return run_id


def test_each_run_reads_as_its_own_endpoint(db_client: TestClient, db_url: str) -> None:
    # A long series (downsampled, with a spike and NaN/inf at its edges), a short one (whole),
    # and a sparse one (over budget in steps, under it in points): per run, different lengths.
    runs = [
        seed(
            db_client,
            db_url,
            {
                "loss": [(s, math.nan if s == 0 else 1.0 / (1 + s) + k) for s in range(n)]
                + [(n, math.inf)],
                "spiky": [(s, 50.0 if s == 777 * (k + 1) else math.sin(s)) for s in range(n)],
                "lr": [(s, 0.1) for s in range(5)],
                "probe": [(100 * s, float(s)) for s in range(40)],
            },
        )
        for k, n in enumerate((6_000, 3_000, 9_000))
    ]
    params = {"max_points": 100, "with_time": "true"}
    batch = db_client.get("/api/metrics", params={"runs": ",".join(map(str, runs)), **params})
    assert batch.status_code == 200, batch.text
    got = batch.json()["runs"]
    assert [r["run_id"] for r in got] == runs
    for run_id, read in zip(runs, got, strict=True):
        alone = db_client.get(f"/api/runs/{run_id}/metrics", params=params).json()
        assert read["series"] == alone["series"] and read["available"] == alone["available"]
        by_name = {s["name"]: s for s in read["series"]}
        assert by_name["loss"]["downsampled"] and not by_name["lr"]["downsampled"]
        assert not by_name["probe"]["downsampled"] and len(by_name["probe"]["steps"]) == 40
        loss = by_name["loss"]
        assert loss["values"][0] is None and loss["values"][-1] is None  # NaN, inf: null
        assert loss["steps"][0] == 0 and loss["wall_times"][-1] == 1e9 + loss["steps"][-1]
        spiky = by_name["spiky"]
        assert 50.0 in spiky["values"] and len(spiky["steps"]) <= 100
    # a repeated id is read once; runs and names in the order given
    chosen = db_client.get(
        "/api/metrics", params={"runs": f"{runs[2]},{runs[0]},{runs[2]}", "names": "lr,nope"}
    ).json()["runs"]
    assert [r["run_id"] for r in chosen] == [runs[2], runs[0]]
    assert [s["name"] for s in chosen[0]["series"]] == ["lr", "nope"]
    assert chosen[0]["series"][1]["steps"] == [] and "wall_times" not in chosen[0]["series"][0]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (f"runs={runs}", "String should match pattern")
        for runs in ["", ",", "1,", "1,,2", "1,x", "-1", "0", "007", "1 2", "12345678901"]
    ]
    + [
        (f"runs={','.join(map(str, range(1, MAX_COMPARED + 2)))}", "String should match pattern"),
        ("runs=1&runs=2", "given more than once"),
        ("", "Field required"),
    ],
)
def test_bad_ids_are_422_naming_runs(client: TestClient, query: str, reason: str) -> None:
    answer = client.get(f"/api/metrics?{query}")
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", "runs"] and reason in error["msg"]


def test_missing_runs_and_bad_budgets(client: TestClient) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    gone = client.get("/api/metrics", params={"runs": f"{run_id},99999,{2**31}"})
    assert gone.status_code == 404 and gone.json() == {"detail": f"run 99999, {2**31} not found"}
    budget = client.get("/api/metrics", params={"runs": run_id, "max_points": 2})
    assert budget.status_code == 422 and budget.json()["detail"][0]["loc"] == [
        "query",
        "max_points",
    ]
    spec = client.get("/openapi.json").json()["paths"]["/api/metrics"]["get"]
    assert {"401", "404", "422"} <= set(spec["responses"])


def test_a_token_is_needed(client: TestClient, mint: Mint) -> None:  # noqa: F811
    run_id = client.post("/api/runs", json=SMALL, headers=bearer(mint(Scope.write))).json()["id"]
    assert client.get("/api/metrics", params={"runs": run_id}).status_code == 401
    read = client.get("/api/metrics", params={"runs": run_id}, headers=bearer(mint(Scope.read)))
    assert read.status_code == 200 and read.json()["runs"][0]["run_id"] == run_id


def test_finest_levels_are_made_from_the_points(db_client: TestClient, db_url: str) -> None:
    """3,000 steps at 400 points read level 1, which is not stored: still downsampled."""
    run_id = seed(
        db_client, db_url, {"loss": [(s, 9.0 if s == 1234 else 1.0) for s in range(3000)]}
    )
    answer = db_client.get("/api/metrics", params={"runs": run_id, "max_points": 400}).json()
    (loss,) = answer["runs"][0]["series"]
    assert loss["downsampled"] and len(loss["steps"]) <= 400 and loss["total_points"] == 3000
    assert 9.0 in loss["values"] and loss["steps"][-1] == 2999
