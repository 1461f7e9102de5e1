"""Exposure (issue 12 item 7) in-process: tokens and scopes, the session cookie for the live
stream, JSON-only writes, Origin and Host allow-lists, the body limit and the submission rate.

Streaming of an oversized body and the start-up refusal need a real server:
tests/integration/test_exposure.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from server.config import Settings, get_settings
from server.db import session_scope
from server.store import tokens as token_store
from server.tokens import Scope
from tests.api.test_runs_api import SMALL, finish, parse_sse

Mint = Callable[[Scope], str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def mint(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mint]:
    """OBS_AUTH=required; ``mint(scope)`` creates a token and returns its secret."""
    monkeypatch.setenv("OBS_AUTH", "required")
    get_settings.cache_clear()

    def make(scope: Scope) -> str:
        with session_scope(settings.resolved_database_url) as session:
            return token_store.create_token(session, name=f"test-{scope}", scope=scope)[1]

    yield make
    get_settings.cache_clear()


def test_required_auth_rejects_missing_bad_and_revoked_tokens(
    client: TestClient, mint: Mint
) -> None:
    missing = client.get("/api/runs")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json() == {"detail": "missing credentials: send Authorization: Bearer <token>"}
    secret = mint(Scope.read)
    assert client.get("/api/runs", headers=bearer(secret)).status_code == 200
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    for bad in (forged, "obs_nonsense", ""):
        assert client.get("/api/runs", headers=bearer(bad)).status_code == 401
    assert client.post("/api/runs", json=SMALL).status_code == 401  # no token, no run
    # nothing is revealed before the token: not whether a run exists, not the schema's errors
    assert client.get("/api/runs/12345").status_code == 401
    assert client.post("/api/runs", json={"steps": -1}).status_code == 401

    admin = mint(Scope.admin)
    listed = client.get("/api/tokens", headers=bearer(admin)).json()
    read_id = next(t["id"] for t in listed["data"] if t["scope"] == "read")
    assert "secret" not in listed["data"][0] and "digest" not in listed["data"][0]
    assert client.delete(f"/api/tokens/{read_id}", headers=bearer(admin)).status_code == 204
    revoked = client.get("/api/runs", headers=bearer(secret))
    assert revoked.status_code == 401 and revoked.json()["detail"] == "invalid or revoked token"
    # health stays public (load balancers, compose); the dashboard's static files too
    assert client.get("/api/health").status_code == 200
    assert client.get("/login.html").status_code == 200


def test_scopes_read_write_admin(client: TestClient, mint: Mint) -> None:
    read, write, admin = mint(Scope.read), mint(Scope.write), mint(Scope.admin)
    denied = client.post("/api/runs", json=SMALL, headers=bearer(read))
    assert denied.status_code == 403
    assert denied.json()["detail"] == "this token's scope is read; write is needed"
    created = client.post("/api/runs", json=SMALL, headers=bearer(write))
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    assert client.post(f"/api/runs/{run_id}/cancel", headers=bearer(read)).status_code == 403
    assert client.delete(f"/api/runs/{run_id}", headers=bearer(read)).status_code == 403
    assert client.get(f"/api/runs/{run_id}", headers=bearer(read)).status_code == 200
    assert client.post(f"/api/runs/{run_id}/cancel", headers=bearer(write)).status_code == 200

    assert client.get("/api/tokens", headers=bearer(write)).status_code == 403
    made = client.post("/api/tokens", json={"name": "ci", "scope": "write"}, headers=bearer(admin))
    assert made.status_code == 201 and made.json()["scope"] == "write"
    assert client.get("/api/runs", headers=bearer(made.json()["secret"])).status_code == 200
    session = client.get("/api/session", headers=bearer(write)).json()
    assert session == {"auth": "required", "name": "test-write", "scope": "write"}


def test_stream_with_a_token_and_with_the_login_cookie(
    client: TestClient, mint: Mint, settings: Settings
) -> None:
    write = mint(Scope.write)
    run_id = client.post("/api/runs", json=SMALL, headers=bearer(write)).json()["id"]
    finish(settings, run_id)
    assert client.get(f"/api/runs/{run_id}/stream").status_code == 401

    streamed = client.get(f"/api/runs/{run_id}/stream", headers=bearer(write))
    assert streamed.status_code == 200
    assert [m["event"] for m in parse_sse(streamed.text)][-1] == "end"

    # the login page: POST /api/session with the bearer token sets the cookie EventSource sends
    login = client.post("/api/session", headers=bearer(write))
    assert login.status_code == 200 and login.json()["scope"] == "write"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/api" in cookie
    by_cookie = client.get(f"/api/runs/{run_id}/stream")
    assert [m["event"] for m in parse_sse(by_cookie.text)][-1] == "end"
    assert client.get("/api/session").json()["scope"] == "read"  # a cookie reads, never writes
    assert client.post("/api/runs", json=SMALL).status_code == 401
    assert client.delete(f"/api/runs/{run_id}").status_code == 401
    assert client.delete("/api/session").status_code == 204
    assert client.get(f"/api/runs/{run_id}/stream").status_code == 401


def test_writes_take_json_only(client: TestClient) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    # the cross-site cancel of issue 12: a "simple" request, no CORS preflight
    plain = client.post(
        f"/api/runs/{run_id}/cancel", content="x", headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415 and plain.json()["detail"].startswith("writes take a JSON")
    empty_plain = client.post(f"/api/runs/{run_id}/cancel", headers={"Content-Type": "text/plain"})
    assert empty_plain.status_code == 415
    form = client.post("/api/runs", data={"steps": "5"})  # application/x-www-form-urlencoded
    assert form.status_code == 415
    untyped = client.post("/api/runs", content=json.dumps(SMALL).encode())
    assert untyped.status_code == 415  # a body with no Content-Type
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "queued"
    charset = {"Content-Type": "application/json; charset=utf-8"}
    assert client.post("/api/runs", content=json.dumps(SMALL), headers=charset).status_code == 201
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 200  # no body: no type


def test_foreign_origins_cannot_write(client: TestClient, settings: Settings) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    for origin in ("https://evil.example", "null", "http://testserver:8080"):
        refused = client.post(f"/api/runs/{run_id}/cancel", headers={"Origin": origin})
        assert refused.status_code == 403, origin
        assert refused.json() == {"detail": "origin not allowed (OBS_ALLOWED_ORIGINS)"}
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "queued"
    own = client.post(f"/api/runs/{run_id}/cancel", headers={"Origin": "http://testserver"})
    assert own.status_code == 200


def test_listed_origin_may_write(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBS_ALLOWED_ORIGINS", "https://obs.example.com")
    get_settings.cache_clear()
    listed = client.post("/api/runs", json=SMALL, headers={"Origin": "https://obs.example.com"})
    assert listed.status_code == 201


def test_unknown_hosts_are_refused(client: TestClient) -> None:
    for host in ("evil.example", "rebind.attacker.test:8000", "testserver.evil.example"):
        response = client.get("/api/runs", headers={"Host": host})
        assert response.status_code == 400, host
        assert response.json() == {"detail": "host not allowed (OBS_ALLOWED_HOSTS)"}
    assert client.get("/api/health", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/api/runs", headers={"Host": "testserver:8000"}).status_code == 200


def test_no_page_can_be_framed(client: TestClient) -> None:
    for response in (client.get("/"), client.get("/api/runs", headers={"Host": "evil.example"})):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_oversized_bodies_are_413(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBS_MAX_BODY_BYTES", "1000")
    get_settings.cache_clear()
    big = {**SMALL, "name": "x" * 2000}
    declared = client.post("/api/runs", json=big)
    assert declared.status_code == 413
    assert declared.json() == {"detail": "request body larger than 1000 bytes (OBS_MAX_BODY_BYTES)"}
    # chunked (no Content-Length): counted as it arrives
    chunks = (json.dumps(big).encode()[i : i + 100] for i in range(0, 2100, 100))
    chunked = client.post("/api/runs", content=chunks, headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert "x" * 100 not in chunked.text  # the body is never echoed
    assert client.get("/api/runs").json()["count"] == 0
    assert client.post("/api/runs", json=SMALL).status_code == 201


def test_submissions_are_rate_limited_per_token(
    client: TestClient, mint: Mint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBS_SUBMIT_RATE", "3/hour")
    get_settings.cache_clear()
    first, second = mint(Scope.write), mint(Scope.write)
    for _ in range(3):
        assert client.post("/api/runs", json=SMALL, headers=bearer(first)).status_code == 201
    limited = client.post("/api/runs", json=SMALL, headers=bearer(first))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 1200  # one submission back in 20 min
    assert "OBS_SUBMIT_RATE=3/hour" in limited.json()["detail"]
    assert client.post("/api/runs", json=SMALL, headers=bearer(second)).status_code == 201
    assert client.get("/api/runs", headers=bearer(first)).json()["count"] == 4
