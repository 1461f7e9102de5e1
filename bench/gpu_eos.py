"""The edge-of-stability preset through a real worker on ``device: cuda``, against the same
worker on ``device: cpu`` in the same run.

Each run is trained by a fresh ``observatory worker`` (SQLite, and the embedded Redis broker
unless ``--redis`` names one); seconds per step are the run's wall time (claim to finish, probes
included) over its steps.

    PYTHONPATH=. python bench/gpu_eos.py [--steps 400] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import torch

from bench.workers import eos_config, measure
from server import embedded, migrate
from server.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--redis", default=None, help="default: the embedded broker")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_eos: no CUDA device visible to torch; nothing to measure")
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(database)
        broker = args.redis and f"{args.redis.rsplit('/', 1)[0]}/{random.randrange(1, 16)}"
        settings = Settings(data_dir=Path(tmp), database_url=database, broker_url=broker)
        redis = None if broker else embedded.start_redis(settings.broker_socket, Path(tmp))
        try:
            seconds = {}
            for device in ("cuda", "cpu"):
                config = eos_config(args.steps, device=device)
                seconds[device] = measure(settings, {}, [config], Path(tmp))[0]
                print(
                    f"EoS preset, {args.steps} steps, worker on {device}: "
                    f"{seconds[device] * 1e3:.1f} ms per step",
                    flush=True,
                )
        finally:
            if redis is not None:
                redis.terminate()
                redis.wait(30)
        print(
            f"GPU: {torch.cuda.get_device_name()}; cpu / cuda per step: "
            f"{seconds['cpu'] / seconds['cuda']:.2f}x"
        )


if __name__ == "__main__":
    main()
