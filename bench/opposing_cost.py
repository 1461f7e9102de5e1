"""Cost and storage of the opposing-signals monitor (worker.probes.opposing).

Prints, for the task registry's digits MLP and DigitsCNN (worker.training.tasks, at the
DigitsTask defaults unless told otherwise):
  * one monitor pass over 10,000 examples (batched, no grad, eval mode) in units of one SGD
    training step on a batch of 128 (forward, backward, update);
  * the batched pass against a one-example-at-a-time loop over the same examples;
and the storage of per-example losses per probe step and for a long run, plus the time to read
one example's loss over the whole run from in-memory blobs (no database in the way).

Times are medians over repeats, on random inputs (the content of the inputs does not change the
cost), in float32 on the CPU with the thread count given (default 1: on a shared machine two
threads oversubscribe the cores).

Usage: python -m bench.opposing_cost [--examples 10000] [--threads 1] [--every 50] ...
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from bench.common import timed
from worker.probes.opposing import (
    example_loss_from_bytes,
    losses_to_bytes,
    per_example_losses,
)
from worker.training.models import DigitsCNN, mlp

CE_NONE = nn.CrossEntropyLoss(reduction="none")


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, repeats))


def one_at_a_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The baseline: one forward pass per example, no grad, eval mode."""
    model.eval()
    with torch.no_grad():
        out = [CE_NONE(model(x[i : i + 1]), y[i : i + 1]).item() for i in range(len(x))]
    model.train()
    return np.array(out, dtype=np.float32)


def bench_model(name: str, model: nn.Module, shape: tuple[int, ...], args: argparse.Namespace):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.examples, *shape, generator=gen)
    y = torch.randint(0, 10, (args.examples,), generator=gen)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batch = torch.randint(0, args.examples, (args.train_batch,), generator=gen)

    def train_step() -> None:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()

    def monitor_pass() -> object:
        return per_example_losses(model, CE_NONE, x, y, batch_size=args.monitor_batch)

    step = median_seconds(train_step, args.repeats * 10, warmup=5)
    batched = median_seconds(monitor_pass, args.repeats)
    looped = median_seconds(lambda: one_at_a_time(model, x, y), max(1, args.repeats // 3), 0)
    result = monitor_pass()
    gap = float(np.abs(result.losses - one_at_a_time(model, x, y)).max())
    print(f"{name} ({n_params:,} parameters), {args.examples:,} examples:")
    print(f"  training step (batch {args.train_batch}): {step * 1e3:8.3f} ms")
    print(
        f"  monitor pass (batch {args.monitor_batch}, {result.n_forward} forward passes): "
        f"{batched * 1e3:8.1f} ms = {batched / step:6.1f} training steps"
    )
    print(
        f"  one-at-a-time loop: {looped * 1e3:8.1f} ms; batched is {looped / batched:6.1f}x "
        f"faster (max |difference| {gap:.1e})"
    )
    default = batched * args.monitor_size / args.examples / (args.every * step)
    print(
        f"  default schedule ({args.monitor_size:,} monitored, every {args.every} steps): "
        f"{default:.1%} of the training time"
    )


def bench_storage(args: argparse.Namespace) -> None:
    n_probes = args.run_steps // args.every
    rng = np.random.default_rng(0)
    blobs = [
        losses_to_bytes(rng.gamma(1.0, 1.0, args.monitor_size).astype(np.float32))
        for _ in range(n_probes)
    ]
    per_step = len(blobs[0])
    index = args.monitor_size // 2

    def query() -> list[float]:
        return [example_loss_from_bytes(blob, index) for blob in blobs]

    seconds = median_seconds(query, args.repeats)
    print(f"storage, monitor set of {args.monitor_size:,} examples, float32 little-endian:")
    print(
        f"  per probe step: {per_step:,} bytes (JSON text of the same floats: "
        f"{len(str(np.frombuffer(blobs[0], '<f4').tolist())):,} bytes)"
    )
    print(
        f"  {args.run_steps:,}-step run, probe every {args.every} steps: {n_probes:,} probe "
        f"steps, {n_probes * per_step:,} bytes ({n_probes * per_step / 2**20:.1f} MiB)"
    )
    print(
        f"  one example's loss over all {n_probes:,} probe steps from in-memory blobs: "
        f"{seconds * 1e3:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--monitor-batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--monitor-size", type=int, default=2048)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--run-steps", type=int, default=100_000)
    parser.add_argument("--hidden", type=int, default=64, help="MLP width (DigitsTask default)")
    parser.add_argument("--depth", type=int, default=2, help="MLP hidden layers")
    parser.add_argument("--channels", type=int, default=64, help="CNN channels")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s)")
    model = mlp(64, args.hidden, args.depth, 10)
    bench_model(f"digits MLP 64-{args.hidden}x{args.depth}-10", model, (64,), args)
    bench_model(f"DigitsCNN({args.channels})", DigitsCNN(args.channels), (1, 8, 8), args)
    bench_storage(args)


if __name__ == "__main__":
    main()
