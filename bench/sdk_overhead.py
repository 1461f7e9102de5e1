"""SDK logging overhead in a ~0.6 ms/step loop (target ≤ 3 %), beside TensorBoard's writer.

Four variants of one user-written loop (digits MLP, hidden 128, minibatch 128, CPU, one thread),
alternating so that drifting machine load hits all alike; each logs ``train.loss`` (a tensor)
and ``lr`` every step:
- off: the bare loop, nothing logged;
- sdk: ``run.log`` to a real ``observatory serve`` (started here: SQLite, Redis notifications);
- sdk-offline: ``run.log`` with ``mode="offline"`` (the spool only: no network);
- tensorboard: ``torch.utils.tensorboard.SummaryWriter.add_scalar`` (event files).
The timed part is the loop; ``finish``/``close`` (sending what is left) is reported apart.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/sdk_overhead.py [--repeat 7] [--steps 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import torch
from torch.utils.tensorboard import SummaryWriter

import observatory as obs
from server import migrate
from server.schemas import DigitsTask
from worker.training.tasks import build_task

REDIS = "redis://127.0.0.1:6379/13"


def start_server(data: Path, port: int) -> subprocess.Popen:
    url = f"sqlite:///{data / 'bench.db'}"
    migrate.upgrade(url)
    env = {**os.environ, "OBS_DATABASE_URL": url, "OBS_BROKER_URL": REDIS, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


def loop(steps: int, log: Callable[[dict, int], None] | None) -> float:
    """Seconds of ``steps`` SGD steps of the digits MLP, logging through ``log``."""
    torch.manual_seed(0)
    task = build_task(DigitsTask(hidden=128), 0)
    model, x, y = task.model, task.train_x, task.train_y
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    batches = torch.randint(0, len(y), (steps, 128))
    start = time.perf_counter()
    for step in range(steps):
        idx = batches[step]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if log is not None:
            log({"train.loss": loss.detach(), "lr": 0.05}, step)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {"off": [], "sdk": [], "sdk-offline": [], "tensorboard": []}
    closing: dict[str, list[float]] = {k: [] for k in times}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_server(root, args.port)
        try:
            for _ in range(args.repeat):
                times["off"].append(loop(args.steps, None))
                for mode in ("online", "offline"):
                    run = obs.init(
                        name="bench",
                        server=f"http://127.0.0.1:{args.port}",
                        mode=mode,
                        spool_dir=root / "spool",
                    )
                    name = "sdk" if mode == "online" else "sdk-offline"
                    times[name].append(loop(args.steps, lambda v, s, run=run: run.log(v, step=s)))
                    start = time.perf_counter()
                    run.finish()
                    closing[name].append(time.perf_counter() - start)
                writer = SummaryWriter(str(root / f"tb-{len(times['off'])}"))

                def add(values: dict, step: int, writer: SummaryWriter = writer) -> None:
                    for tag, value in values.items():
                        writer.add_scalar(tag, value, step)

                times["tensorboard"].append(loop(args.steps, add))
                start = time.perf_counter()
                writer.close()
                closing["tensorboard"].append(time.perf_counter() - start)
        finally:
            server.terminate()
            server.wait()
    base = statistics.median(times["off"])
    print(f"{args.steps} steps, {args.repeat} rounds, medians (min–max)")
    for name, values in times.items():
        med = statistics.median(values)
        close = f", finish {statistics.median(closing[name]) * 1e3:.0f} ms" if closing[name] else ""
        print(
            f"{name:12s} {med:.3f} s ({min(values):.3f}–{max(values):.3f}) "
            f"{med / args.steps * 1e3:.3f} ms/step  overhead {100 * (med / base - 1):+.1f} %{close}"
        )


if __name__ == "__main__":
    main()
