"""``GET /api/runs``: the filters reach SQL, so what SQL cannot hold is refused first."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.test_runs_api import SMALL


def test_filters_sql_cannot_hold_are_422(client: TestClient) -> None:
    client.post("/api/runs", json=SMALL)
    for query in ["tag=a%00b", f"offset={2**63}", f"offset={2**31}", "limit=0", "limit=501"]:
        response = client.get(f"/api/runs?{query}")
        assert response.status_code == 422, (query, response.status_code)
    assert client.get(f"/api/runs?offset={2**31 - 1}").json() == {"data": [], "count": 1}
    assert client.get("/api/runs?tag=").json()["count"] == 1  # an empty filter is no filter
