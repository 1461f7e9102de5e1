"""The HTTP side of the SDK: create or resume a run and send spool records, in order."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx

from observatory import spool

log = logging.getLogger("observatory")
PATHS = {spool.BATCH: "batches", spool.FINISH: "finish"}


class Unreachable(Exception):
    """The server did not answer or answered 5xx: keep the records and try again later."""


class Rejected(Exception):
    """The server refused for good (4xx): retrying the same request cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


class Connection:
    def __init__(self, server: str, token: str | None = None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:  # noqa: ANN401
        try:
            response = self.http.post(path, **kwargs)
        except httpx.HTTPError as error:
            raise Unreachable(str(error)) from error
        if response.status_code >= 500:
            raise Unreachable(f"{response.status_code} from {path}")
        if response.status_code >= 400:
            raise Rejected(response.status_code, response.text[:500])
        return response

    def create(self, header: dict[str, Any]) -> dict[str, Any]:
        """Create the run of a spool header (or resume one); the same key gives the same run."""
        return self._post("/api/sdk/runs", json=header).json()

    def send(self, run_id: int, kind: bytes, body: bytes) -> None:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        self._post(f"/api/sdk/runs/{run_id}/{PATHS[kind]}", content=body, headers=headers)

    def heartbeat(self, run_id: int, key: str, step: int) -> dict[str, Any]:
        body = {"key": key, "step": step}
        return self._post(f"/api/sdk/runs/{run_id}/heartbeat", json=body).json()

    def close(self) -> None:
        self.http.close()


def upload(path: Path, connection: Connection) -> int:
    """Send a whole spool file (``observatory sync``): creates or finds its run, then posts every
    record (idempotent upserts: a spool sent twice changes nothing).  Returns the run's id."""
    records = spool.read(path)
    first = next(records, None)
    if first is None or first[1] != spool.INIT:
        raise ValueError(f"{path} is not a spool file (no header)")
    run_id = connection.create(spool.decode(first[2]))["id"]
    for _, kind, body in records:
        connection.send(run_id, kind, body)
    return run_id
