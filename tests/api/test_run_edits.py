"""Run ids are never reused (both databases), and tags and notes can be edited after submission."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.config import Settings
from server.db import get_engine, get_sessionmaker
from server.schemas import RunConfig
from server.store import runs as run_store
from server.store.metrics import Point, write_points

SMALL = {"task": {"kind": "gaussian_mixture"}, "steps": 20, "log_every": 5, "tags": ["t1"]}


def test_deleting_the_newest_run_never_frees_its_id(db_url: str) -> None:
    config = RunConfig.model_validate(SMALL)
    with get_sessionmaker(db_url)() as session:
        first = run_store.create_run(session, config=config).id
        newest = run_store.create_run(session, config=config).id
        session.commit()
        run_store.delete_run(session, run_id=newest)
        session.commit()
        after = run_store.create_run(session, config=config).id
        session.commit()
    assert first < newest < after


def test_patch_edits_tags_and_notes_and_rejects_the_rest(client: TestClient) -> None:
    run = client.post("/api/runs", json=SMALL).json()
    url = f"/api/runs/{run['id']}"
    assert run["notes"] == ""

    edited = client.patch(url, json={"tags": ["sweep-a", "lr", "sweep-a"]})
    assert edited.status_code == 200, edited.text
    assert edited.json()["tags"] == ["sweep-a", "lr"] and edited.json()["notes"] == ""

    noted = client.patch(url, json={"notes": "diverged after warm-up"}).json()
    assert noted["tags"] == ["sweep-a", "lr"] and noted["notes"] == "diverged after warm-up"
    assert client.get(url).json()["notes"] == "diverged after warm-up"
    assert client.get("/api/runs").json()["data"][0]["notes"] == "diverged after warm-up"

    for body, field in (({"name": "x"}, "name"), ({"tags": [""]}, "tags"), ({"notes": 3}, "notes")):
        rejected = client.patch(url, json=body)
        assert rejected.status_code == 422
        assert rejected.json()["detail"][0]["loc"][1] == field
    assert client.patch("/api/runs/999", json={"notes": "x"}).status_code == 404


def test_search_by_name_or_tag_filter_by_task_and_sort(db_url: str) -> None:
    configs = [
        {**SMALL, "name": "Sweep_lr-0.1", "tags": ["baseline"]},
        {**SMALL, "name": "other", "tags": ["LR-sweep", "x"]},
        {"task": {"kind": "digits"}, "steps": 30, "name": "digits-a", "tags": []},
    ]
    with get_sessionmaker(db_url)() as session:
        runs = [run_store.create_run(session, config=RunConfig.model_validate(c)) for c in configs]
        ids = [run.id for run in runs]
        session.commit()

        def found(**kwargs: object) -> list[int]:
            runs, count = run_store.list_runs(session, **kwargs)
            assert count == len(runs)
            return [r.id for r in runs]

        assert found(q="sweep") == [ids[1], ids[0]]  # name or tag, any case
        assert found(q="p_l") == [ids[0]]  # "_" is a character, not a wildcard
        assert found(q="%") == []
        assert found(task="digits") == [ids[2]]
        assert found(task="gaussian_mixture", q="x") == [ids[1]]
        assert found(sort="name", descending=False) == [ids[2], ids[1], ids[0]]
        assert found(sort="step", descending=True) == [ids[2], ids[1], ids[0]]  # ties: newest


def test_the_runs_list_carries_the_summaries_asked_for(
    client: TestClient, settings: Settings
) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    other = client.post("/api/runs", json=SMALL).json()["id"]
    points = [Point("test.acc", s, v, 0.0) for s, v in ((0, 0.1), (5, 0.9), (10, 0.7))]
    with get_engine(settings.resolved_database_url).begin() as connection:
        write_points(connection, run_id=run_id, points=points)
    data = client.get("/api/runs", params={"summary": "test.acc,nope"}).json()["data"]
    by_id = {run["id"]: run["summary"] for run in data}
    assert by_id[run_id] == {"test.acc": {"last": 0.7, "last_step": 10, "min": 0.1, "max": 0.9}}
    assert by_id[other] == {}
    assert client.get("/api/runs").json()["data"][0]["summary"] is None
