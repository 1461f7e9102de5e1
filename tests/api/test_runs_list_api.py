"""``GET /api/runs``: the filters reach SQL, so what SQL cannot hold is refused first."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.db import get_engine
from server.store.metrics import Point, write_points
from tests.api.test_runs_api import SMALL


def test_filters_sql_cannot_hold_are_422(client: TestClient) -> None:
    client.post("/api/runs", json=SMALL)
    for query in ["tag=a%00b", f"offset={2**63}", f"offset={2**31}", "limit=0", "limit=501"]:
        response = client.get(f"/api/runs?{query}")
        assert response.status_code == 422, (query, response.status_code)
    assert client.get(f"/api/runs?offset={2**31 - 1}").json() == {"data": [], "count": 1}
    assert client.get("/api/runs?tag=").json()["count"] == 1  # an empty filter is no filter


def test_runs_sort_by_a_series_summary(client: TestClient, settings: Settings) -> None:
    """The runs table's summary columns sort (issue 15): runs without the series come last."""
    ids = [client.post("/api/runs", json=SMALL).json()["id"] for _ in range(4)]
    finals = {ids[0]: 0.5, ids[1]: 0.2, ids[2]: 0.9}  # ids[3] logged no loss
    with get_engine(settings.resolved_database_url).begin() as connection:
        for run_id, final in finals.items():
            points = [Point("test.loss", 0, 5.0, 1.0), Point("test.loss", 10, final, 2.0)]
            write_points(connection, run_id=run_id, points=points)

    def order(**params: str) -> list[int]:
        response = client.get("/api/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    assert order(sort_series="test.loss:last", order="asc") == [ids[1], ids[0], ids[2], ids[3]]
    assert order(sort_series="test.loss:last", order="desc") == [ids[2], ids[0], ids[1], ids[3]]
    assert order(sort_series="test.loss:max", order="desc", limit="1", offset="1") == [ids[1]]
    bad = client.get("/api/runs", params={"sort_series": "test.loss:median"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "sort_series"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("sort_series=%00:last", "sort_series"),  # PostgreSQL text cannot hold NUL: was a 500
        ("sort_series=a%01b:max", "sort_series"),
        ("sort_series=a%7F:min", "sort_series"),
        ("sort_series=a,b:min", "sort_series"),
        (f"sort_series={'x' * 129}:last", "sort_series"),  # longer than any series name
        ("summary=a%00", "summary"),
        ("summary=ok,b%1F", "summary"),
        ("summary=a,,b", "summary"),
        (f"summary={'y' * 129}", "summary"),
        (f"summary={','.join(f's{i}' for i in range(21))}", "summary"),  # at most 20
    ],
)
def test_series_names_in_the_query_are_checked(
    db_client: TestClient, query: str, name: str
) -> None:
    """``sort_series`` and ``summary`` name series: printable, at most 128 characters (the
    column's width), comma-free — a 422 naming the parameter, on both databases."""
    response = db_client.get(f"/api/runs?{query}")
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["query", name]]


def test_any_printable_series_name_sorts_and_summarizes(db_client: TestClient, db_url: str) -> None:
    run_id = db_client.post("/api/runs", json=SMALL).json()["id"]
    name = "ünïcode:loss 😀" + "x" * 114  # 128 characters, a colon and a space among them
    engine = get_engine(db_url)
    with engine.begin() as connection:
        write_points(connection, run_id=run_id, points=[Point(name, 3, 0.25, 1.0)])
    names = ",".join([name] + [f"s{i}" for i in range(19)])
    listed = db_client.get("/api/runs", params={"sort_series": f"{name}:max", "summary": names})
    assert listed.status_code == 200, listed.text
    (run,) = listed.json()["data"]
    assert run["summary"] == {name: {"last": 0.25, "last_step": 3, "min": 0.25, "max": 0.25}}
