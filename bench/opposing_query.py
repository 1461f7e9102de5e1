"""The opposing probe's reads: one example's loss over a long run, the step listing, one step.

A 100,000-step run at the default schedule (``probes.opposing``: 2,048 monitored examples every
49 steps, 2,042 probe steps with the last one) is written as the worker writes it
(``write_arrays``: one ``opposing`` row per probe step with its float32 losses and the groups in
the metadata; 100 rows per transaction), then read through the API in-process (FastAPI
``TestClient``: routing, validation and JSON included, no network):

- ``GET /api/runs/{id}/examples/{index}/loss`` (default budget 1,000 points, and every point),
  against the baseline in the same run of reading and decoding every row's blob;
- ``GET /api/runs/{id}/outliers`` (the listing the panel loads) and ``/outliers/{step}``.

Target: the per-example query under 200 ms.

    python -m bench.opposing_query [--run-steps 100000] [--every 49] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from bench.common import fresh_database, new_run, summary, timed
from server.app import create_app
from server.config import get_settings
from server.db import get_engine, get_sessionmaker
from server.models import ArrayResult
from server.store.results import ArrayRecord, pack_arrays, unpack_arrays, write_arrays
from worker.probes.opposing import MonitorSet, find_groups

MONITOR_SIZE = 2048


def probe_meta(rng: np.random.Generator, indices: np.ndarray, step: int, every: int) -> dict:
    """Metadata shaped like the hook's: one planted-like pair among scattered examples."""
    before = rng.random(len(indices))
    after = before + rng.normal(0, 0.01, len(indices))
    features = rng.normal(0, 1, (len(indices), 32))
    labels = rng.integers(0, 4, len(indices))
    after[:20] += 1.0
    after[20:40] -= 1.0
    features[:40, 0] += 20
    labels[:20], labels[20:40] = 0, 1
    found = find_groups(before, after, features, labels, k=32)
    summary_ = found.to_dict(indices)
    for pair in summary_["pairs"]:
        pair["oscillation"] = {
            "alternation_rising": 0.8,
            "alternation_falling": 0.7,
            "correlation": -0.6,
            "window": 20,
        }
    best = max((p.score for p in found.pairs), default=None)
    return {
        "prev_step": step - every,
        "mean_loss": float(after.mean()),
        **summary_,
        "n_pairs": len(found.pairs),
        "best_score": best,
        "cost": {"n_forward": 2, "seconds": 0.01},
    }


def probe_steps(run_steps: int, every: int) -> list[int]:
    """The hook's schedule: multiples of ``every``, and the last step."""
    return sorted({*range(0, run_steps + 1, every), run_steps})


def write_run(url: str, run_steps: int, every: int, seed: int = 0) -> tuple[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    run_id = new_run(url, task={"kind": "opposing_signals"}, steps=run_steps)
    indices = MonitorSet.choose(4096, MONITOR_SIZE, seed).indices
    meta = probe_meta(rng, indices, every, every)
    monitor = ArrayRecord(
        "opposing.monitor",
        0,
        {"indices": indices, "labels": rng.integers(0, 4, MONITOR_SIZE)},
        {"every": every, "size": MONITOR_SIZE, "image_shape": None, "threshold": 0.5},
    )
    engine = get_engine(url)
    steps = probe_steps(run_steps, every)
    with engine.begin() as connection:
        write_arrays(connection, run_id=run_id, records=[monitor])
    for lo in range(0, len(steps), 100):
        records = [
            ArrayRecord(
                "opposing",
                s,
                {"losses": rng.random(MONITOR_SIZE, dtype=np.float32)},
                {**meta, "prev_step": s - every if s else None},
            )
            for s in steps[lo : lo + 100]
        ]
        with engine.begin() as connection:
            write_arrays(connection, run_id=run_id, records=records)
    return run_id, indices


def decode_everything(url: str, run_id: int, position: int) -> list[float]:
    """The baseline: every row's blob read and decoded, one element kept."""
    with get_sessionmaker(url)() as session:
        rows = session.execute(
            select(ArrayResult.step, ArrayResult.data)
            .where(ArrayResult.run_id == run_id, ArrayResult.probe == "opposing")
            .order_by(ArrayResult.step)
        )
        return [float(unpack_arrays(data)["losses"][position]) for _, data in rows]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-steps", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=49)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    n_steps = len(probe_steps(args.run_steps, args.every))
    blob = pack_arrays({"losses": np.zeros(MONITOR_SIZE, np.float32)})
    meta = probe_meta(np.random.default_rng(0), np.arange(MONITOR_SIZE), args.every, args.every)
    meta_bytes = len(json.dumps(meta))
    print(
        f"{args.run_steps:,}-step run, every {args.every}: {n_steps:,} probe steps x "
        f"{MONITOR_SIZE:,} examples; per probe step {len(blob):,} bytes of losses "
        f"({MONITOR_SIZE * 4:,} of float32 + {len(blob) - MONITOR_SIZE * 4} of .npz framing) and "
        f"{meta_bytes:,} bytes of JSON metadata; run total {n_steps * len(blob):,} + "
        f"{n_steps * meta_bytes:,} bytes"
    )
    for backend in args.backends.split(","):
        with fresh_database(backend) as url:
            measure(backend, url, args, n_steps)


def measure(backend: str, url: str, args: argparse.Namespace, n_steps: int) -> None:
    run_id, indices = write_run(url, args.run_steps, args.every)
    os.environ["OBS_DATABASE_URL"] = url
    get_settings.cache_clear()
    client = TestClient(create_app())
    positions = [0, MONITOR_SIZE // 2, MONITOR_SIZE - 1]

    def example(max_points: int) -> list[dict]:
        results = []
        for p in positions:
            path = f"/api/runs/{run_id}/examples/{int(indices[p])}/loss"
            response = client.get(path, params={"max_points": max_points})
            assert response.status_code == 200, response.text
            results.append(response.json())
        return results

    full = example(0)
    for p, data in zip(positions, full, strict=True):
        assert data["values"] == decode_everything(url, run_id, p)  # the same numbers
    assert len(full[0]["steps"]) == n_steps
    budget = [t / len(positions) for t in timed(lambda: example(1000), args.repeat)]
    every_point = [t / len(positions) for t in timed(lambda: example(0), args.repeat)]
    baseline = timed(lambda: decode_everything(url, run_id, 0), max(3, args.repeat // 3))
    listing = timed(lambda: client.get(f"/api/runs/{run_id}/outliers"), args.repeat)
    mid = n_steps // 2 * args.every
    at = timed(lambda: client.get(f"/api/runs/{run_id}/outliers/{mid}"), args.repeat)
    print(f"\n[{backend}]")
    print(f"  example loss, max_points=1000 (downsampled): {summary(budget)}")
    print(f"  example loss, every point ({n_steps:,}):      {summary(every_point)}")
    print(f"  baseline, decode every blob:                 {summary(baseline)}")
    print(
        f"  speed-up of the query over the baseline: "
        f"{statistics.median(baseline) / statistics.median(every_point):.1f}x"
    )
    print(f"  GET /outliers (listing of {n_steps:,} steps):  {summary(listing)}")
    print(f"  GET /outliers/{{step}} (span 20):             {summary(at)}")
    get_settings.cache_clear()


if __name__ == "__main__":
    main()
