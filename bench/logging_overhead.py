"""Training-loop overhead of logging (target ≤ 5 %), against the same loop with logging off.

Three variants of one run, alternating so that drifting machine load hits all alike:
- off: the bare loop (no metrics at all);
- measured: metrics computed every ``log_every`` steps (a test-set evaluation pass, norms) and
  handed to a reporter that drops them — the cost of *measuring*, set by the test-set size and
  ``log_every``, which a user chooses;
- logged: the worker's real path, the same metrics written through the database reporter
  (SQLite, writer thread, pub/sub notifications, heartbeat thread).
"Logging overhead" is logged vs measured; the measurement cost is reported beside it.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/logging_overhead.py [--repeat 11] [--steps 3000]
        [--log-every 10]
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
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--steps", type=int, default=3000)
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
    off, measured, logged = [], [], []
    with fresh_database("sqlite") as url:
        settings = Settings(database_url=url, broker_url=REDIS)
        train(config, NullReporter(), log_metrics=False)  # warm-up: imports, data set cache
        for _ in range(args.repeat):
            start = time.perf_counter()
            train(config, NullReporter(), log_metrics=False)
            off.append(time.perf_counter() - start)

            start = time.perf_counter()
            train(config, NullReporter())
            measured.append(time.perf_counter() - start)

            run_id = new_run(url, steps=args.steps)
            with get_sessionmaker(url)() as session:
                run = session.get(Run, run_id)
                run.status, run.worker = "running", "bench"
                session.commit()
            start = time.perf_counter()
            reporter = DatabaseReporter(settings, run_id=run_id, worker="bench")
            train(config, reporter)
            reporter.close()
            logged.append(time.perf_counter() - start)

    def show(label: str, times: list[float]) -> None:
        print(
            f"  {label:<9} median {statistics.median(times):.3f} s "
            f"({min(times):.3f}–{max(times):.3f})"
        )

    print(
        f"digits MLP (hidden 128), batch 128, {args.steps} steps, log every {args.log_every}, "
        f"{args.repeat} alternating rounds:"
    )
    show("off", off)
    show("measured", measured)
    show("logged", logged)
    med = statistics.median
    print(
        f"  logging overhead (logged vs measured): {100 * (med(logged) / med(measured) - 1):+.1f} %"
    )
    print(f"  measurement cost (measured vs off):    {100 * (med(measured) / med(off) - 1):+.1f} %")
    print(f"  total (logged vs off):                 {100 * (med(logged) / med(off) - 1):+.1f} %")


if __name__ == "__main__":
    main()
