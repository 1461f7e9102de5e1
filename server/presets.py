"""Ready-made run configurations offered in the submit form."""

from __future__ import annotations

from server.schemas import RunConfig


def _preset(name: str, description: str, config: dict) -> dict:
    return {
        "name": name,
        "description": description,
        "config": RunConfig.model_validate(config).model_dump(mode="json"),
    }


PRESETS = [
    _preset(
        "digits: MLP, Adam",
        "scikit-learn digits, a 2-layer MLP, full batch; about ten seconds on a laptop CPU.",
        {"name": "digits-mlp", "task": {"kind": "digits"}, "steps": 500, "log_every": 5},
    ),
    _preset(
        "digits: small CNN, SGD minibatch",
        "A small CNN on digits with SGD + momentum on minibatches of 64.",
        {
            "name": "digits-cnn",
            "task": {"kind": "digits", "model": "cnn", "hidden": 16},
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "batch_size": 64,
            "steps": 1000,
            "log_every": 10,
        },
    ),
    _preset(
        "Gaussian mixture: MLP",
        "Four Gaussian classes in 16 dimensions; fast sanity run.",
        {"name": "gauss-mlp", "task": {"kind": "gaussian_mixture"}, "steps": 300, "log_every": 5},
    ),
    _preset(
        "opposing signals (planted)",
        "4,096 examples in 32 dimensions, 3 % of them carrying one large feature split between "
        "classes 0 and 1; SGD at lr 0.5 on minibatches of 256 with the opposing-signals probe "
        "every 5 steps: the planted examples form a rising and a falling group whose losses "
        "alternate (Rosenfeld & Risteski 2023).  Set planted_fraction to 0 for the control.  A "
        "few seconds.",
        {
            "name": "opposing-planted",
            "task": {"kind": "opposing_signals"},
            "optimizer": {"name": "sgd", "lr": 0.5},
            "batch_size": 256,
            "steps": 300,
            "log_every": 5,
            "probes": {"opposing": {"every": 5}},
        },
    ),
    _preset(
        "modular addition (grokking setup)",
        "a+b mod 97, 40% train, MLP over embeddings, AdamW with weight decay 1, full batch: "
        "train accuracy saturates long before test accuracy.",
        {
            "name": "modular-addition",
            "task": {"kind": "modular", "p": 97, "op": "add", "train_fraction": 0.4},
            "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1.0, "betas": [0.9, 0.98]},
            "steps": 5000,
            "log_every": 10,
        },
    ),
]
