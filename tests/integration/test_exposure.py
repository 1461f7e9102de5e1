"""Exposure against real server processes: the start-up refusal of an open server on a reachable
address, the ``observatory token`` round trip, bodies refused while they stream, and the open
server's refusal of connections that arrive on a non-loopback interface."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Service, child_env, free_port, stop_process, wait_for

pytestmark = pytest.mark.integration
LIMIT = 1000


def cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=child_env(data_dir, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("serve", "--host", "0.0.0.0"), {}),
        (("up", "--host", "0.0.0.0"), {}),
        (("serve",), {"OBS_HOST": "::"}),
        (("serve",), {"OBS_ALLOWED_HOSTS": "obs.example.com"}),  # loopback, but proxied
    ],
)
def test_an_open_server_refuses_to_start_where_others_can_reach_it(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", *args, "--port", str(port)],
        env=child_env(tmp_path, **env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop_process(process)  # it started: SIGINT, so that `up` stops its children too
        pytest.fail(f"{' '.join(args)} started an open server on a reachable address")
    assert process.returncode == 2, output
    assert "OBS_AUTH=required" in " ".join(output.split())
    assert not (tmp_path / "broker.sock").exists()  # `up` stopped before starting anything
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``observatory serve`` on 0.0.0.0 with OBS_AUTH=required (what compose runs)."""
    data = tmp_path_factory.mktemp("exposed")
    assert cli(data, "migrate").returncode == 0
    service = Service(
        data, "serve", OBS_AUTH="required", OBS_HOST="0.0.0.0", OBS_MAX_BODY_BYTES=str(LIMIT)
    )
    yield service
    service.stop()


def test_token_create_list_revoke_round_trip(exposed: Service) -> None:
    data = exposed.log_path.parent
    assert "no API token exists" in " ".join(exposed.log.split())  # the start-up hint
    assert httpx.get(f"{exposed.url}/api/runs").status_code == 401
    created = cli(data, "token", "create", "--name", "ci bot", "--scope", "write")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()  # the secret alone on stdout
    assert secret.startswith("obs_") and len(created.stdout.splitlines()) == 1
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{exposed.url}/api/runs", headers=headers).status_code == 200
    runs = cli(data, "runs", "--api", exposed.url, OBS_TOKEN=secret)  # the CLI as a client
    assert runs.returncode == 0 and "0 runs" in runs.stdout, runs.stdout
    refused = cli(data, "runs", "--api", exposed.url)
    assert refused.returncode == 1 and "401" in refused.stdout

    listed = cli(data, "token", "list")
    assert listed.returncode == 0 and "ci bot" in listed.stdout and "write" in listed.stdout
    assert secret not in listed.stdout and secret.split("_")[1] in listed.stdout  # the prefix
    revoked = cli(data, "token", "revoke", secret.split("_")[1])
    assert revoked.returncode == 0, revoked.stderr
    assert httpx.get(f"{exposed.url}/api/runs", headers=headers).status_code == 401
    assert cli(data, "token", "revoke", "999").returncode == 1
    assert cli(data, "token", "create", "--name", "").returncode == 2


def http_exchange(url: str, head: str, chunks: list[bytes]) -> bytes:
    """Sends the request head and ``chunks`` (never ending the body), returns the response."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            sock.sendall(chunk)
        response = b""
        while data := sock.recv(65536):
            response += data
            headers, blank, body = response.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", headers)
            if blank and length and len(body) >= int(length[1]):
                break
        return response


def test_bodies_are_refused_before_they_are_read(exposed: Service) -> None:
    host = exposed.url.removeprefix("http://")
    declared = http_exchange(
        exposed.url,
        f"POST /api/runs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000000000\r\n\r\n",
        [],
    )
    assert declared.startswith(b"HTTP/1.1 413"), declared
    assert b"OBS_MAX_BODY_BYTES" in declared
    chunk = b"x" * 100
    chunked = http_exchange(
        exposed.url,
        f"POST /api/runs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        [b"64\r\n" + chunk + b"\r\n"] * (LIMIT // 100 + 2),  # no terminating 0-chunk: endless
    )
    assert chunked.startswith(b"HTTP/1.1 413"), chunked
    assert chunk not in chunked


def outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_an_open_server_started_around_the_cli_answers_only_on_loopback(tmp_path: Path) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server.app:create_app", "--factory"]
        + ["--host", "0.0.0.0", "--port", str(port)],
        env=child_env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "uvicorn to answer")
        outside = httpx.get(
            f"http://{address}:{port}/api/schema/run-config", headers={"Host": f"127.0.0.1:{port}"}
        )
        assert outside.status_code == 403, outside.text
        assert "answers only on this machine" in outside.json()["detail"]
        proxied = httpx.get(
            f"http://127.0.0.1:{port}/api/schema/run-config",
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert proxied.status_code == 403
        assert httpx.get(f"http://127.0.0.1:{port}/api/schema/run-config").status_code == 200
    finally:
        stop_process(server)
