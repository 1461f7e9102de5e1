"""The live stream in-process: cursor validation, and the shared feed's delivery rules (late
joiners, slow subscribers that the bounded tail outran, resumes) against a real database."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from fastapi.testclient import TestClient

from server.api import live
from server.broker import notify
from server.config import Settings
from server.db import get_engine
from server.models import RunStatus
from server.store.live import Cursor
from server.store.metrics import Point, write_points
from server.store.results import EventRecord, write_events
from tests.api.test_runs_api import SMALL, finish


def token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


BAD_CURSORS = {
    "e is 1e400 (inf)": token('{"s":{},"e":1e400}'),
    "e is 2^63": token(f'{{"s":{{}},"e":{2**63}}}'),
    "e is negative": token('{"s":{},"e":-1}'),
    "e is a float": token('{"s":{},"e":1.5}'),
    "e is a string": token('{"s":{},"e":"5"}'),
    "e is a bool": token('{"s":{},"e":true}'),
    "e is NaN": token('{"s":{},"e":NaN}'),
    "a step is 2^63": token(f'{{"s":{{"loss":{2**63}}},"e":0}}'),
    "a step is negative": token('{"s":{"loss":-5},"e":0}'),
    "a step is 1e400": token('{"s":{"loss":1e400},"e":0}'),
    "s is a list": token('{"s":[],"e":0}'),
    "a key is missing": token('{"s":{}}'),
    "not an object": token("[1, 2]"),
    "deeply nested": token("[" * 10_000 + "]" * 10_000),
    "not JSON": token("not json"),
    "not base64": "%%%",
    "garbage": "garbage",
    "too long": "A" * 40_000,
}


@pytest.mark.parametrize("source", ["query", "header"])
def test_bad_cursors_are_422_naming_the_field_without_echoing_it(
    client: TestClient, settings: Settings, source: str
) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    finish(settings, run_id)  # a stream that wrongly accepted a cursor would end at once
    for case, bad in BAD_CURSORS.items():
        if source == "query":
            response = client.get(f"/api/runs/{run_id}/stream", params={"cursor": bad})
        else:
            response = client.get(f"/api/runs/{run_id}/stream", headers={"Last-Event-ID": bad})
        assert response.status_code == 422, (case, response.status_code)
        (error,) = response.json()["detail"]
        assert error["loc"] == (
            ["query", "cursor"] if source == "query" else ["header", "last-event-id"]
        ), case
        assert error["msg"].startswith("invalid stream cursor: "), case
        assert bad[:40] not in response.text and "Error" not in response.text, case


def test_cursor_limits_are_inclusive(client: TestClient, settings: Settings) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    finish(settings, run_id)
    edge = token(f'{{"s":{{"loss":{2**63 - 1}}},"e":{2**63 - 1}}}')
    response = client.get(f"/api/runs/{run_id}/stream", params={"cursor": edge})
    assert response.status_code == 200 and "event: end" in response.text


def test_ids_beyond_the_id_column_are_404(client: TestClient) -> None:
    response = client.get(f"/api/runs/{2**63}/stream")
    assert response.status_code == 404 and response.json() == {"detail": f"run {2**63} not found"}


async def collect(
    hub: live.Hub, run_id: int, cursor: Cursor, pause: float = 0.0
) -> tuple[dict, list]:
    """Steps per series and event ids one subscriber receives until ``end``."""
    steps: dict[str, list[int]] = {}
    events: list[int] = []
    async for message in live.follow(hub, run_id, cursor):
        data = json.loads(message.data)
        if message.event == "metrics":
            for name, points in data.items():
                steps.setdefault(name, []).extend(points["steps"])
        elif message.event == "event":
            events.append(data["id"])
        elif message.event == "end":
            return steps, events
        await asyncio.sleep(pause)  # a slow client: the tail outruns it
    raise AssertionError("the stream stopped without end")


def test_every_subscriber_gets_every_point_once_even_when_the_tail_outruns_it(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "TAIL_ITEMS", 30)  # a few batches: slow subscribers fall behind
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    engine = get_engine(settings.resolved_database_url)

    def write(first: int, last: int) -> None:
        with engine.begin() as connection:
            points = [Point(n, s, float(s), 0.0) for s in range(first, last) for n in "ab"]
            write_points(connection, run_id=run_id, points=points)
            write_events(connection, run_id=run_id, events=[EventRecord(first, "tick")])
        notify(settings, run_id)

    write(0, 10)  # before anyone follows: every subscriber reads this gap from the database

    async def scenario() -> tuple[list, live.Feed]:
        hub = live.Hub(settings)
        resumed = Cursor({"a": 4, "b": 9}, 1)  # e.g. Last-Event-ID: a up to 4, b up to 9
        early = [
            asyncio.create_task(collect(hub, run_id, Cursor())),
            asyncio.create_task(collect(hub, run_id, Cursor(), pause=0.3)),
            asyncio.create_task(collect(hub, run_id, resumed)),
        ]
        while run_id not in hub.feeds or not hub.feeds[run_id].ready.is_set():
            await asyncio.sleep(0.01)
        feed = hub.feeds[run_id]
        late = []
        for first in range(10, 200, 10):
            await asyncio.to_thread(write, first, first + 10)
            await asyncio.sleep(0.05)
            if first == 100:
                late.append(asyncio.create_task(collect(hub, run_id, Cursor())))
        await asyncio.to_thread(finish, settings, run_id, RunStatus.completed)
        notify(settings, run_id)
        results = await asyncio.wait_for(asyncio.gather(*early, *late), 60)
        assert not hub.feeds  # the poller stopped once everything was read
        return results, feed

    results, feed = asyncio.run(scenario())
    assert feed.trimmed > 0  # the tail was trimmed: the slow subscriber read its gap
    everything = list(range(200))
    for i, (steps, events) in enumerate(results):
        if i == 2:  # the resumed one: only what followed its cursor
            assert steps == {"a": everything[5:], "b": everything[10:]}
            assert len(events) == 19 and events == sorted(set(events))
        else:
            assert steps == {"a": everything, "b": everything}, i
            assert len(events) == 20 and events == sorted(set(events)), i


def test_a_deleted_run_ends_its_streams(client: TestClient, settings: Settings) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]

    async def scenario() -> list[live.Message]:
        hub = live.Hub(settings)
        messages: list[live.Message] = []

        async def follow() -> None:
            async for message in live.follow(hub, run_id, Cursor()):
                messages.append(message)

        task = asyncio.create_task(follow())
        while not messages:  # the first status: the stream follows the run
            await asyncio.sleep(0.01)
        await asyncio.to_thread(client.delete, f"/api/runs/{run_id}")
        await asyncio.wait_for(task, 30)
        assert not hub.feeds
        return messages

    messages = asyncio.run(scenario())
    assert [m.event for m in messages] == ["status", "end"]
    assert json.loads(messages[-1].data) == {"status": "deleted"}


def test_without_redis_the_feed_polls(client: TestClient, settings: Settings) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    unreachable = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    engine = get_engine(settings.resolved_database_url)

    async def scenario() -> tuple[dict, list]:
        hub = live.Hub(unreachable)
        follower = asyncio.create_task(collect(hub, run_id, Cursor()))
        for first in range(0, 30, 10):  # no notification: only the poll can see these
            with engine.begin() as connection:
                points = [Point("loss", s, 1.0, 0.0) for s in range(first, first + 10)]
                write_points(connection, run_id=run_id, points=points)
            await asyncio.sleep(0.3)
        await asyncio.to_thread(finish, settings, run_id)
        return await asyncio.wait_for(follower, 30)

    steps, _ = asyncio.run(scenario())
    assert steps == {"loss": list(range(30))}
