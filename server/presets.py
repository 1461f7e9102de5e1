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
        "edge of stability: digits MLP, SGD",
        "Full-batch SGD at lr 0.2 on 500 digits with the Hessian probe every 10 steps: the top "
        "eigenvalue rises to 2/lr = 10 (eos.crossed) and then hovers around it (Cohen et al. "
        "2021). About 30 s on a two-core CPU.",
        {
            "name": "digits-eos",
            "task": {"kind": "digits", "hidden": 32, "train_size": 500},
            "optimizer": {"name": "sgd", "lr": 0.2},
            "steps": 400,
            "log_every": 5,
            "probes": {
                "hessian": {"every": 10, "k": 5, "batch_size": 500, "trace": True, "density": True}
            },
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
        "neural collapse: digits MLP",
        "A 4-layer MLP (width 256) on digits, SGD + momentum with weight decay 5e-4 on minibatches "
        "of 128, trained well past 100 % train accuracy (reached near step 300) with the "
        "neural-collapse probe every 25 steps on the whole train set.  NC1 falls about 3.7× from "
        "initialization to the fit, then drifts up slightly; NC4 keeps falling (Papyan et al. "
        "2020).  About 15 s on a two-core CPU.",
        {
            "name": "digits-collapse",
            "task": {"kind": "digits", "hidden": 256, "depth": 4},
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
            "batch_size": 128,
            "steps": 1000,
            "log_every": 25,
            "train_metrics": "full",
            "probes": {"collapse": {"every": 25, "max_examples": 2048}},
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
