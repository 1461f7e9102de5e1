"""Torch's thread pool against other processes: the EoS preset through real workers.

Variants, each a fresh set of ``observatory worker`` processes (SQLite + Redis on this machine),
each worker training one run of the edge-of-stability preset (``--steps`` of them):
- one worker alone with every core, and alone with one thread;
- one worker alone with every core and OpenMP's passive wait policy (``OMP_WAIT_POLICY=PASSIVE``:
  a waiting thread sleeps at once instead of spinning) — what spinning costs;
- two workers at once, each with every core and libgomp's default spinning (what workers did
  before issue 17), with every core and the passive wait, and each with its share
  (``OBS_HOST_WORKERS=2``; ``observatory worker`` now also sets the passive wait by default).
Seconds per step are the run's wall time (claim to finish) over its steps.  Target: two workers
at once, with their share, each within 2.5x of one worker alone (its best variant).

    PYTHONPATH=. python bench/thread_oversubscription.py [--steps 100] [--redis redis://…/0]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
from pathlib import Path

from bench.workers import eos_config, measure
from server import migrate
from server.config import Settings
from worker.threads import host_cores

PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}  # OpenMP threads sleep at once instead of spinning
SPIN = {"GOMP_SPINCOUNT": "300000"}  # libgomp's own default: what workers did before issue 17


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    cores = host_cores()
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(database)
        broker = f"{args.redis.rsplit('/', 1)[0]}/{random.randrange(1, 16)}"
        settings = Settings(data_dir=Path(tmp), database_url=database, broker_url=broker)
        every = str(cores)
        variants = [
            ("alone, every core, spinning (before)", {"OBS_TORCH_THREADS": every, **SPIN}, 1),
            ("alone, every core, passive OpenMP wait", {"OBS_TORCH_THREADS": every, **PASSIVE}, 1),
            ("alone, 1 thread", {"OBS_TORCH_THREADS": "1"}, 1),
            ("two at once, every core, spinning (before)", {"OBS_TORCH_THREADS": every, **SPIN}, 2),
            ("two at once, every core, passive wait", {"OBS_TORCH_THREADS": every, **PASSIVE}, 2),
            ("two at once, OBS_HOST_WORKERS=2", {"OBS_HOST_WORKERS": "2"}, 2),
        ]
        print(
            f"{cores} cores; load average before: {os.getloadavg()[0]:.1f}; EoS preset, "
            f"{args.steps} steps per run"
        )
        results = {}
        for label, env, workers in variants:
            configs = [eos_config(args.steps)] * workers
            results[label] = measure(settings, env, configs, Path(tmp))
            times = ", ".join(f"{t * 1e3:.0f} ms" for t in results[label])
            print(f"{label:42s} per step: {times}", flush=True)
        alone = {label: t[0] for label, t in results.items() if label.startswith("alone")}
        best = min(alone, key=alone.get)
        print(f"one worker alone, best: {best} ({alone[best] * 1e3:.0f} ms per step)")
        for label in alone:
            print(f"{label}: {alone[label] / alone[best]:.2f}x the best")
        for label in variants[3:]:  # the worker's default is now the last one
            worst = max(results[label[0]])
            print(f"{label[0]}: slowest worker {worst / alone[best]:.2f}x one worker alone (best)")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
