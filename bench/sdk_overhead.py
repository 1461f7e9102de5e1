"""SDK logging overhead in a ~0.6 ms/step loop (target ≤ 3 %), beside TensorBoard's writer.

Four copies of one user-written loop (digits MLP, hidden 128, minibatch 128, CPU, one thread),
each run in segments of ``--steps`` steps, the four segments of a round in a fresh random order,
so that drifting machine load hits all alike; the overhead is the median over rounds of each
variant's segment time over the bare loop's in the same round — in CPU time of the process (its
threads included: the SDK's sender, TensorBoard's writer), which a loaded machine distorts far
less than wall time (both are printed).  Each logs ``train.loss`` (a
tensor) and ``lr`` every step, one run (or writer) per variant for the whole benchmark:
- off: the bare loop, nothing logged;
- sdk: ``run.log`` to a real ``observatory serve`` (started here: SQLite, Redis notifications);
- sdk-offline: ``run.log`` with ``mode="offline"`` (the spool only: no network);
- tensorboard: ``torch.utils.tensorboard.SummaryWriter.add_scalar`` (event files).
The timed part is the loop; ``finish``/``close`` (sending what is left) is reported apart, and
the online run's stored point count is checked against what was logged.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/sdk_overhead.py [--rounds 21] [--steps 1000]
"""

from __future__ import annotations

import argparse
import math
import os
import random
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


class Loop:
    """The user's training loop, resumable: ``segment(n, log)`` runs its next ``n`` steps."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        task = build_task(DigitsTask(hidden=128), 0)
        self.model, self.x, self.y = task.model, task.train_x, task.train_y
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05)
        self.step = 0

    def segment(
        self,
        steps: int,
        log: Callable[[dict, int], None] | None,
        settle: Callable[[], object] | None = None,
    ) -> tuple[float, float]:
        """(wall, CPU) seconds of ``steps`` steps: wall of the loop alone; CPU of the process
        (all its threads) until ``settle`` — the logger's own flush — returned, so that its
        background work is charged to its own segment."""
        batches = torch.randint(0, len(self.y), (steps, 128))
        model, optimizer, x, y = self.model, self.optimizer, self.x, self.y
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(steps):
            idx = batches[i]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if log is not None:
                log({"train.loss": loss.detach(), "lr": 0.05}, self.step + i)
        wall = time.perf_counter() - start
        if settle is not None:
            settle()
        self.step += steps
        return wall, time.process_time() - cpu


def per_call_us(call: Callable[[int], None], n: int = 5000, repeat: int = 7) -> float:
    """Microseconds per call, the fastest of ``repeat`` timings (timeit's rule on a busy box)."""
    best = math.inf
    for r in range(repeat):
        start = time.process_time()
        for i in range(n):
            call(r * n + i)
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--steps", type=int, default=1000, help="steps per variant per round")
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = ["off", "sdk", "sdk-offline", "tensorboard"]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_server(root, args.port)
        try:
            url = f"http://127.0.0.1:{args.port}"
            online = obs.init(name="bench", server=url, spool_dir=root / "spool")
            offline = obs.init(name="bench", mode="offline", spool_dir=root / "offline")
            writer = SummaryWriter(str(root / "tb"))

            def add(values: dict, step: int) -> None:
                for tag, value in values.items():
                    writer.add_scalar(tag, value, step)

            logs = {
                "off": None,
                "sdk": lambda v, s: online.log(v, step=s),
                "sdk-offline": lambda v, s: offline.log(v, step=s),
                "tensorboard": add,
            }
            settles = {
                "off": None,
                "sdk": online.flush,
                "sdk-offline": offline.flush,
                "tensorboard": writer.flush,
            }
            loops = {k: Loop() for k in names}
            for k in names:  # warm-up
                loops[k].segment(200, logs[k], settles[k])
            rng = random.Random(0)
            for _ in range(args.rounds):
                for k in rng.sample(names, len(names)):  # a fresh order every round
                    times[k].append(loops[k].segment(args.steps, logs[k], settles[k]))
            loss = torch.tensor(1.0)
            calls = {
                "sdk": per_call_us(
                    lambda i: online.log({"train.loss": loss, "lr": 0.05}, loops["sdk"].step + i)
                ),
                "tensorboard": per_call_us(lambda i: add({"train.loss": loss, "lr": 0.05}, i)),
            }
            online.flush()
            background = online.background_seconds / (loops["sdk"].step + 7 * 5000)
            finish = {}
            for k, closing in (("sdk", online.finish), ("sdk-offline", offline.finish)):
                start = time.perf_counter()
                closing()
                finish[k] = time.perf_counter() - start
            start = time.perf_counter()
            writer.close()
            finish["tensorboard"] = time.perf_counter() - start
            stored = httpx.get(
                f"{url}/api/runs/{online.id}/metrics",
                params={"names": "train.loss", "max_points": 0},
                timeout=60,
            ).json()["series"][0]["total_points"]
        finally:
            server.terminate()
            server.wait()
    total = args.rounds * args.steps + 200 + 7 * 5000  # the loop's steps, then per_call_us's
    print(f"{args.rounds} rounds x {args.steps} steps per variant (random order per round)")
    print(f"server stored {stored}/{total} train.loss points of the online run")
    step = min(c for _, c in times["off"]) / args.steps
    print(
        f"per step: bare loop {step * 1e3:.3f} ms CPU (fastest round); run.log "
        f"{calls['sdk']:.1f} us + background thread {background * 1e6:.1f} us CPU "
        f"= {100 * (calls['sdk'] * 1e-6 + background) / step:.1f} % of the step; "
        f"TensorBoard add_scalar x2 {calls['tensorboard']:.1f} us "
        f"= {100 * calls['tensorboard'] * 1e-6 / step:.1f} % (its writer thread not counted)"
    )
    print("overhead vs off: median over rounds of (variant / off in the same round)")
    for k in names:
        wall = [w / b[0] for (w, _), b in zip(times[k], times["off"], strict=True)]
        cpu = [c / b[1] for (_, c), b in zip(times[k], times["off"], strict=True)]
        per_step = statistics.median(c for _, c in times[k]) / args.steps * 1e3
        extra = f", finish {finish[k] * 1e3:.0f} ms" if k in finish else ""
        fastest = min(c for _, c in times[k]) / min(c for _, c in times["off"])
        print(
            f"{k:12s} CPU {per_step:.3f} ms/step, CPU {100 * (statistics.median(cpu) - 1):+.1f} %"
            f" (fastest rounds {100 * (fastest - 1):+.1f} %), wall "
            f"{100 * (statistics.median(wall) - 1):+.1f} %{extra}"
        )


if __name__ == "__main__":
    main()
