"""A user's training script for the SDK tests: a small MLP, SGD, logging every step.

Run as ``python sdk_script.py OUT_DIR [--steps N] [--hessian-every K] [--sleep S] [--raise-at S]
[--hang-at S]``; it writes ``OUT_DIR/expected.json`` (every value it logged, as floats) and
``OUT_DIR/states.pt`` (θ_s and the probe batch at each Hessian probe step) before finishing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

import observatory as obs

parser = argparse.ArgumentParser()
parser.add_argument("out", type=Path)
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--hessian-every", type=int, default=0)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--raise-at", type=int, default=-1)
parser.add_argument("--hang-at", type=int, default=-1)
args = parser.parse_args()

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
x, y = torch.randn(256, 5), torch.randint(0, 3, (256,))
probe = (x[:64], y[:64])
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
loss_fn = nn.functional.cross_entropy

run = obs.init(name="sdk-test", config={"lr": 0.05}, tags=["test"], total_steps=args.steps)
(args.out / "run_id").write_text(str(run.id))
probes = None
if args.hessian_every:
    hessian = {"every": args.hessian_every, "k": 1, "tol": 1e-6}
    probes = run.probes(model, loss_fn, [probe], hessian=hessian)
expected: dict[str, dict[int, float]] = {"train.loss": {}, "step.sqrt": {}}
states = {}
for step in range(args.steps):
    if probes is not None:
        if step % args.hessian_every == 0:
            states[step] = {k: v.clone() for k, v in model.state_dict().items()}
        probes.step(step, optimizer=optimizer)
    if step == args.raise_at:
        raise RuntimeError(f"the user's script broke at step {step}")
    if step == args.hang_at:
        (args.out / "hanging").write_text("1")
        time.sleep(3600)
    batch = torch.randint(0, 256, (32,))
    loss = loss_fn(model(x[batch]), y[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    run.log({"train.loss": loss, "step.sqrt": step**0.5}, step=step)
    expected["train.loss"][step] = float(loss)
    expected["step.sqrt"][step] = step**0.5
    if args.sleep:
        time.sleep(args.sleep)
(args.out / "expected.json").write_text(json.dumps(expected))
torch.save({"states": states, "probe": probe}, args.out / "states.pt")
run.finish()
