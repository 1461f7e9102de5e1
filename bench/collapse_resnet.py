"""The neural-collapse ResNet preset's per-layer NC1 at a size a CPU can run.

Runs "neural collapse: ResNet on images" (``server.zoo_presets.COLLAPSE_RESNET``: SGD + momentum,
weight decay, cosine schedule, minibatches of 128, NC1 at the classifier and at the input of
each stage) through the worker's loop with a narrower, shallower ResNet and fewer steps, and
prints train accuracy and each layer's NC1 at every probe step as a Markdown table.

    OMP_NUM_THREADS=1 python -m bench.collapse_resnet --depth 8 --width 0.5 --steps 600

The preset at full size (ResNet-20, 3,000 steps) on a GPU (``bench/gpu.sh``):

    python -m bench.collapse_resnet --depth 20 --width 1 --steps 3000 --device cuda
"""

from __future__ import annotations

import argparse
import time

from bench.common import demo_datasets
from server.schemas import RunConfig
from server.zoo_presets import COLLAPSE_RESNET
from tests.recording import Recorder
from worker.probe_hooks.service import build_hooks
from worker.training.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    model = COLLAPSE_RESNET["model"] | {"depth": args.depth, "width": args.width}
    every = COLLAPSE_RESNET["probes"]["collapse"]["every"]
    run = RunConfig.model_validate(
        COLLAPSE_RESNET
        | {"model": model, "steps": args.steps, "log_every": every, "device": args.device}
    )
    recorder = Recorder()
    start = time.perf_counter()
    with demo_datasets():
        train(run, recorder, hooks=build_hooks(run))
    elapsed = time.perf_counter() - start
    layers = [f"nc.{name}.nc1" for name in run.probes.collapse.layers] + ["nc.nc1"]
    print("| step | train acc | " + " | ".join(layers) + " |")
    print("|---" * (len(layers) + 2) + "|")
    for step, values in sorted(recorder.points.items()):
        cells = " | ".join(f"{values[name]:.3f}" for name in layers)
        print(f"| {step} | {values['train.acc']:.4f} | {cells} |")
    print(f"\n{elapsed:.0f} s")


if __name__ == "__main__":
    main()
