"""Torch's thread pool against other processes: the EoS preset through real workers.

Variants, each a fresh set of ``observatory worker`` processes (SQLite + Redis on this machine),
each worker training one run of the edge-of-stability preset (``--steps`` of them):
- one worker alone with every core, and alone with one thread;
- two workers at once, each with every core (torch's default: what workers did before
  ``OBS_HOST_WORKERS``), and each with its share (``OBS_HOST_WORKERS=2``, the fix).
Seconds per step are the run's wall time (claim to finish) over its steps.  Target: two workers
at once, with their share, each within 2.5x of one worker alone.

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
        variants = [
            ("alone, every core", {"OBS_HOST_WORKERS": "1"}, 1),
            ("alone, 1 thread", {"OBS_TORCH_THREADS": "1"}, 1),
            ("two at once, every core each (before)", {"OBS_TORCH_THREADS": str(cores)}, 2),
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
            print(f"{label:40s} per step: {times}", flush=True)
        alone = results["alone, every core"][0]
        for label in ("two at once, every core each (before)", "two at once, OBS_HOST_WORKERS=2"):
            worst = max(results[label])
            print(f"{label}: slowest worker {worst / alone:.2f}x one worker alone")
        print(
            f"alone, 1 thread vs every core: {results['alone, 1 thread'][0] / alone:.2f}x; "
            f"load average after: {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
