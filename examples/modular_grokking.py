"""Grokking, live: a one-layer transformer of your own on (a + b) mod p, with the grokking probe.

Trained with AdamW and strong weight decay on a fraction of the table, the network first
memorizes the training pairs, then, much later, generalizes (Power et al., 2022).  The grokking
probe follows train/test accuracy and marks ``grokking.memorized`` and ``grokking.generalized``,
with the weight norm and the Fourier sparsity of the embeddings (``model.embed``) in between.

    python examples/modular_grokking.py                    # p = 97, ~10k steps
    python examples/modular_grokking.py --p 23 --steps 200 # a quick look (what CI runs)
"""

import argparse

import torch
from torch import nn

import observatory as obs

parser = argparse.ArgumentParser()
parser.add_argument("--p", type=int, default=97)
parser.add_argument("--steps", type=int, default=10_000)
parser.add_argument("--every", type=int, default=100, help="grokking probe period")
args = parser.parse_args()
device = "cuda" if torch.cuda.is_available() else "cpu"


class Transformer(nn.Module):
    def __init__(self, p: int, d: int = 128, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(p + 1, d)  # residues 0..p-1, then "="
        self.pos = nn.Parameter(torch.randn(3, d) / d**0.5)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, d))
        self.unembed = nn.Linear(d, p)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        equals = torch.full_like(pairs[:, :1], self.embed.num_embeddings - 1)
        h = self.embed(torch.cat([pairs, equals], 1)) + self.pos
        h = h + self.attn(h, h, h, need_weights=False)[0]
        h = h + self.mlp(h)
        return self.unembed(h[:, -1])


torch.manual_seed(0)
p = args.p
pairs = torch.cartesian_prod(torch.arange(p), torch.arange(p)).to(device)
labels = (pairs[:, 0] + pairs[:, 1]) % p
order = torch.randperm(len(pairs), device=device)
cut = int(0.4 * len(pairs))
train, test = (pairs[order[:cut]], labels[order[:cut]]), (pairs[order[cut:]], labels[order[cut:]])
model = Transformer(p).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
loss_fn = nn.functional.cross_entropy

run = obs.init(
    name=f"modular-add-p{p}",
    config=vars(args),
    tags=["example", "grokking"],
    total_steps=args.steps,
)
grokking = {"every": args.every, "train": train, "test": test, "modulus": p, "ntk": False}
probes = run.probes(model, loss_fn, [train], grokking=grokking)
print(f"watch it live: {run.url}")
for step in range(args.steps + 1):
    probes.step(step, optimizer=optimizer, last=step == args.steps)
    loss = loss_fn(model(train[0]), train[1])
    optimizer.zero_grad()
    loss.backward()
    run.log({"train.loss": loss.detach()}, step=step)
    if step < args.steps:
        optimizer.step()
run.finish()
