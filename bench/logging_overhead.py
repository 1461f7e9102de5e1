"""Training-loop overhead of logging (target ≤ 5 %): the same run with logging on and off.

"On" is the worker's real path: metrics every ``log_every`` steps (test evaluation, norms) written
through the database reporter (SQLite, batched flushes, pub/sub notifications, heartbeat thread).
"Off" is the bare loop.  Runs alternate, so drifting machine load hits both alike.

    python bench/logging_overhead.py [--repeat 5] [--steps 600]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.common import fresh_database, new_run
from server.config import Settings
from server.db import get_sessionmaker
from server.models import Run
from server.schemas import RunConfig
from worker.sink import DatabaseReporter
from worker.training.loop import train

REDIS = "redis://127.0.0.1:6379/13"


class NullReporter:
    def metrics(self, step: int, values: dict) -> None: ...
    def event(self, step: int, kind: str, payload: dict) -> None: ...
    def arrays(self, probe: str, step: int, arrays: dict, meta: dict) -> None: ...
    def flush(self) -> None: ...
    def stop_reason(self, step: int) -> None: ...


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = RunConfig.model_validate(
        {
            "task": {"kind": "digits", "hidden": 128},
            "steps": args.steps,
            "log_every": args.log_every,
            "device": "cpu",
            "batch_size": 128,
        }
    )
    on, off = [], []
    with fresh_database("sqlite") as url:
        settings = Settings(database_url=url, broker_url=REDIS)
        for _ in range(args.repeat):
            start = time.perf_counter()
            train(config, NullReporter(), log_metrics=False)
            off.append(time.perf_counter() - start)

            run_id = new_run(url, steps=args.steps)
            with get_sessionmaker(url)() as session:
                run = session.get(Run, run_id)
                run.status, run.worker = "running", "bench"
                session.commit()
            start = time.perf_counter()
            reporter = DatabaseReporter(settings, run_id=run_id, worker="bench")
            train(config, reporter)
            reporter.close()
            on.append(time.perf_counter() - start)
    ratio = statistics.median(on) / statistics.median(off)
    print(f"digits MLP (hidden 128), batch 128, {args.steps} steps, log every {args.log_every}:")
    print(f"  logging off: median {statistics.median(off):.2f} s ({min(off):.2f}–{max(off):.2f})")
    print(f"  logging on:  median {statistics.median(on):.2f} s ({min(on):.2f}–{max(on):.2f})")
    print(f"  overhead: {100 * (ratio - 1):+.1f} % (median over {args.repeat} alternating pairs)")


if __name__ == "__main__":
    main()
