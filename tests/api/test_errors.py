"""Error responses: a 500 reveals nothing but a request id, 405 names every allowed method, and
the OpenAPI document states each operation's errors in the shapes the handlers produce."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings, get_settings
from tests.conftest import free_port


def app_with(endpoint: Callable[[], None]) -> FastAPI:
    """The app with one more route, ``GET /api/test``, ahead of the static files' catch-all."""
    app = create_app()
    app.router.routes.insert(0, APIRoute("/api/test", endpoint, methods=["GET"]))
    return app


def boom() -> None:
    raise RuntimeError("(psycopg.errors.DataError) SELECT secret FROM runs")


def test_unexpected_errors_answer_a_request_id_and_log_the_cause(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(app_with(boom), raise_server_exceptions=False)
    with client, caplog.at_level(logging.ERROR, logger="server.api.errors"):
        response = client.get("/api/test")
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"detail", "request_id"} and body["detail"] == "internal error"
    assert "secret" not in response.text and "psycopg" not in response.text
    assert response.headers["X-Request-ID"] == body["request_id"]
    logged = [r for r in caplog.records if body["request_id"] in r.getMessage()]
    assert logged and "SELECT secret" in str(logged[0].exc_info[1])


def test_405_names_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("OPTIONS", "/api/runs")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert client.request("PUT", "/api/runs/1").headers["Allow"] == "DELETE, GET, PATCH"


def test_a_literal_path_is_not_taken_for_an_id(client: TestClient) -> None:
    """``/api/runs/validate`` is an operation, not the run "validate"; a path that only other
    methods serve is a 405 even where the dashboard's static files would answer 404."""
    patched = client.patch("/api/runs/validate", json={"tags": []})
    assert (patched.status_code, patched.headers["Allow"]) == (405, "POST")
    listed = client.get("/api/sdk/runs")
    assert (listed.status_code, listed.headers["Allow"]) == (405, "POST")
    assert client.options("/api/runs/validate").headers["Allow"] == "POST"
    assert client.get("/api/runs/123456").status_code == 404  # a real miss stays a 404


def documented(client: TestClient) -> dict[tuple[str, str], dict]:
    paths = client.get("/openapi.json").json()["paths"]
    return {(m.upper(), p): op["responses"] for p, ops in paths.items() for m, op in ops.items()}


def test_openapi_documents_the_errors_of_each_operation(client: TestClient) -> None:
    operations = documented(client)
    for (method, path), responses in operations.items():
        public = path in ("/api/health", "/api/session")  # no token needed (public_router)
        assert {"400", "403"} | ({"401"} if not public else set()) <= set(responses), (method, path)
        if "{run_id}" in path:
            assert {"404", "422"} <= set(responses), (method, path)
        for code, response in responses.items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if code == "400":  # the HTTP server's own answer to a request it cannot parse
                assert set(response["content"]) == {"text/plain"}
            elif code == "422":
                assert schema == {"$ref": "#/components/schemas/ValidationErrorPublic"}
            elif code.startswith(("4", "5")):
                assert schema == {"$ref": "#/components/schemas/ErrorPublic"}, (path, code)
    assert {"413", "415", "422", "429", "503"} <= set(operations["POST", "/api/runs"])
    assert "409" in operations["POST", "/api/runs/{run_id}/cancel"]
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's default 422 shape is never used


def test_hand_raised_422_has_the_validation_shape(settings: Settings) -> None:
    """A handler's ``HTTPException(422, "text")`` is reshaped like pydantic's errors."""

    def hand() -> None:
        raise HTTPException(422, detail="bad cursor")

    with TestClient(app_with(hand)) as client:
        body = client.get("/api/test").json()
    assert body == {"detail": [{"loc": [], "msg": "bad cursor", "type": "value_error"}]}


def test_unreachable_broker_is_503_without_the_connection_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBS_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        response = client.post("/api/runs", json={"steps": 5})
        assert response.status_code == 503
        assert response.json() == {"detail": "broker unreachable: the run was not queued"}
        (run,) = client.get("/api/runs").json()["data"]
    assert run["status"] == "failed" and "127.0.0.1" not in run["error"]
