"""The one-layer transformer of the modular task (Nanda et al. 2023's setup)."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from server.schemas import ModularTask, RunConfig
from tests.recording import Recorder
from worker.training.loop import train
from worker.training.models import ModularTransformer
from worker.training.tasks import build_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def full_causal_forward(model: ModularTransformer, pairs: torch.Tensor) -> torch.Tensor:
    """The textbook block at every position with a causal mask, read at the last position."""
    tokens = torch.cat([pairs, torch.full_like(pairs[:, :1], model.p)], dim=1)
    resid = model.embed(tokens) + model.pos
    n, seq, d = resid.shape
    heads = model.heads
    q, k, v = model.qkv(model.norm1(resid)).view(n, seq, 3, heads, d // heads).unbind(2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (n, heads, seq, d_head)
    scores = q @ k.transpose(-1, -2) / (d // heads) ** 0.5
    scores = scores.masked_fill(torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1), -torch.inf)
    mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, seq, d)
    resid = resid + model.attn_out(mixed)
    resid = resid + model.mlp_out(torch.relu(model.mlp_in(model.norm2(resid))))
    return model.unembed(resid)[:, -1]


@pytest.mark.parametrize("layer_norm", [False, True])
def test_forward_is_the_full_causal_block_at_the_last_position(layer_norm: bool) -> None:
    task = build_task(ModularTask(p=31, model="transformer", layer_norm=layer_norm), seed=2)
    model = task.model
    assert isinstance(model, ModularTransformer)
    assert model.embed.weight.shape == (32, 128)  # p residues and the "=" token
    out = model(task.train_x[:50])
    assert out.shape == (50, 31)
    torch.testing.assert_close(out, full_causal_forward(model, task.train_x[:50]))
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == (2 if layer_norm else 0)
    d, h, p = 128, 512, 31
    expected = (p + 1) * d + 3 * d + 4 * d * d + (d * h + h) + (h * d + d) + d * p
    assert sum(t.numel() for t in model.parameters()) == expected + 4 * d * layer_norm


def test_transformer_fits_modular_addition() -> None:
    cfg = RunConfig.model_validate(
        {
            "task": {
                "kind": "modular",
                "p": 17,
                "train_fraction": 0.5,
                "model": "transformer",
                "embed_dim": 32,
                "heads": 4,
                "hidden": 64,
            },
            "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.1},
            "steps": 300,
            "log_every": 50,
            "device": "cpu",
        }
    )
    reporter = Recorder()
    train(cfg, reporter)
    first, last = reporter.points[0], reporter.points[300]
    assert first["train.acc"] < 0.2 and last["train.acc"] == 1.0
    assert last["train.loss"] < first["train.loss"] / 10


def test_heads_must_divide_the_width() -> None:
    with pytest.raises(ValidationError, match="embed_dim"):
        ModularTask(model="transformer", embed_dim=130, heads=4)
    with pytest.raises(ValidationError, match="heads"):
        ModularTask(model="transformer", heads=0)
    assert ModularTask(model="mlp", embed_dim=130, heads=4).embed_dim == 130  # MLP: no heads
