"""Edge of stability, live: full-batch gradient descent on scikit-learn's digits with a small CNN.

With step size η, gradient descent's sharpness (the top Hessian eigenvalue) rises until it
reaches 2/η and then hovers there (Cohen et al., 2021).  Open the run's page while this trains:
the Hessian panel draws λ_max against the 2/η line and marks the ``eos.crossed`` event.

    observatory up                      # or: observatory serve (with migrations applied)
    python examples/digits_eos.py       # OBS_API_URL / OBS_TOKEN select the server
    python examples/digits_eos.py --steps 300 --every 50   # a quick look (what CI runs)
"""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import observatory as obs

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=3000)
parser.add_argument("--every", type=int, default=50, help="Hessian probe period")
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()

device = "cuda" if torch.cuda.is_available() else "cpu"
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32).view(-1, 1, 8, 8).div(16).to(device)
y = torch.tensor(digits.target).to(device)
x_train, y_train, x_test, y_test = x[:1000], y[:1000], x[1000:], y[1000:]

torch.manual_seed(0)
model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1),
    nn.ReLU(),
    nn.Conv2d(16, 16, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(16 * 16, 10),
).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
loss_fn = nn.functional.cross_entropy

run = obs.init(
    name=f"digits-cnn-eos-lr{args.lr}",
    config=vars(args),
    tags=["example", "eos"],
    total_steps=args.steps,
)
probes = run.probes(
    model, loss_fn, [(x_train[:512], y_train[:512])], hessian={"every": args.every, "k": 3}
)
print(f"watch it live: {run.url}")
for step in range(args.steps + 1):
    probes.step(step, optimizer=optimizer, last=step == args.steps)  # on θ_s, before the update
    loss = loss_fn(model(x_train), y_train)  # full batch: gradient descent
    optimizer.zero_grad()
    loss.backward()
    if step % 10 == 0:
        with torch.no_grad():
            test_acc = (model(x_test).argmax(1) == y_test).float().mean()
        run.log({"train.loss": loss.detach(), "test.acc": test_acc, "lr": args.lr}, step=step)
    if step < args.steps:
        optimizer.step()
run.finish()
