"""The edge-of-stability preset's sharpness trajectory at a size a CPU can run.

Runs "edge of stability: CIFAR-style ResNet" (``server.zoo_presets.EOS_RESNET``: full-batch GD
on a ResNet without BatchNorm, the Hessian probe's top eigenvalue on the whole training set)
through the worker's loop with an in-memory reporter, at a chosen depth, width, number of
training images and learning rate, and prints the train loss and λ_max against 2/lr every
``--every`` steps, then the largest λ_max, its step and the ``eos.crossed`` events.

    OMP_NUM_THREADS=1 python -m bench.eos_resnet --depth 8 --width 0.25 --images 300 --lr 0.2

The preset at full size (ResNet-20, every training image, lr 0.04) on a GPU (``bench/gpu.sh``):

    python -m bench.eos_resnet --depth 20 --width 1 --images 0 --lr 0.04 --steps 2000 --device cuda
"""

from __future__ import annotations

import argparse
import time

from bench.common import demo_datasets
from server.schemas import RunConfig
from server.zoo_presets import EOS_RESNET
from tests.recording import Recorder
from worker.probe_hooks.service import build_hooks
from worker.training.loop import train


def config(args: argparse.Namespace) -> RunConfig:
    return RunConfig.model_validate(
        EOS_RESNET
        | {
            "task": EOS_RESNET["task"] | {"subset": args.images or None},
            "model": EOS_RESNET["model"] | {"depth": args.depth, "width": args.width},
            "optimizer": {"name": "sgd", "lr": args.lr},
            "steps": args.steps,
            "log_every": args.every,
            "device": args.device,
            "probes": {"hessian": EOS_RESNET["probes"]["hessian"] | {"every": args.every}},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--images", type=int, default=300, help="0: every training image")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=20)
    args = parser.parse_args()
    run, recorder = config(args), Recorder()
    start = time.perf_counter()
    with demo_datasets():
        train(run, recorder, hooks=build_hooks(run))
    elapsed = time.perf_counter() - start
    threshold = 2 / args.lr
    print(f"| step | train loss | λ_max | λ_max / (2/lr = {threshold:g}) |\n|---|---|---|---|")
    for step, values in sorted(recorder.points.items()):
        loss, sharpness = values["train.loss"], values["hessian.lambda_max"]
        print(f"| {step} | {loss:.4f} | {sharpness:.2f} | {sharpness / threshold:.2f} |")
    peak = max(recorder.points, key=lambda s: recorder.points[s]["hessian.lambda_max"])
    print(
        f"\nlargest λ_max {recorder.points[peak]['hessian.lambda_max']:.2f} at step {peak}; "
        f"events: {sorted(k for k, _ in recorder.events)}; {elapsed:.0f} s"
    )


if __name__ == "__main__":
    main()
