"""Ready-made run configurations offered in the submit form."""

from __future__ import annotations

from server.dataset_presets import DATASET_PRESETS
from server.schemas import RunConfig
from server.zoo_presets import ZOO_PRESETS


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
        "A 4-layer MLP (width 256, BatchNorm) on digits, SGD + momentum with weight decay 5e-3 "
        "and a cosine learning rate on minibatches of 128 (10 steps an epoch), 1000 steps: 100 % "
        "train accuracy by epoch 4, then about 95 epochs of terminal phase.  The neural-collapse "
        "probe runs at the end of every epoch on the whole train set; NC1 falls about 60× from "
        "the first epoch at 100 % to the end, and the class means approach a simplex ETF "
        "(Papyan et al. 2020).  Without BatchNorm NC1 does not fall.  About 25 s on a 2-core CPU.",
        {
            "name": "digits-collapse",
            "task": {"kind": "digits", "hidden": 256, "depth": 4, "batch_norm": True},
            "optimizer": {
                "name": "sgd",
                "lr": 0.05,
                "momentum": 0.9,
                "weight_decay": 5e-3,
                "schedule": "cosine",
            },
            "batch_size": 128,
            "steps": 1000,
            "log_every": 10,
            "train_metrics": "full",
            "probes": {"collapse": {"every": 10, "max_examples": 2048}},
        },
    ),
    _preset(
        "loss landscape: digits CNN, PCA trajectory",
        "A small CNN (8 channels) on digits, SGD + momentum on minibatches of 64, with a 21 × 21 "
        "loss surface every 50 steps on the plane of the weight trajectory's top two principal "
        "directions (Li et al. 2018), the path drawn on it.  About 4 s on a two-core CPU.",
        {
            "name": "digits-landscape",
            "task": {"kind": "digits", "model": "cnn", "hidden": 8},
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "batch_size": 64,
            "steps": 300,
            "log_every": 10,
            "probes": {
                "landscape": {
                    "every": 50,
                    "kind": "pca",
                    "snapshot_every": 10,
                    "resolution": 21,
                    "range": 1.25,
                    "eval_size": 256,
                }
            },
        },
    ),
    _preset(
        "grokking: modular addition",
        "a+b mod 97, 40 % train, an MLP over 128-d embeddings (512 hidden), AdamW (lr 1e-3, "
        "weight decay 1, betas 0.9/0.98), full batch, with the grokking probe every 100 steps: "
        "train accuracy is 100 % by step ~100 (grokking.memorized), test accuracy jumps only "
        "near step 4,000 (grokking.generalized), while the embeddings' Fourier sparsity rises "
        "ahead of it (Power et al. 2022; Nanda et al. 2023).  6–11 minutes on a loaded two-core "
        "CPU.",
        {
            "name": "grokking-modular-addition",
            "task": {"kind": "modular", "p": 97, "op": "add", "train_fraction": 0.4},
            "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1.0, "betas": [0.9, 0.98]},
            "steps": 6000,
            "log_every": 10,
            "probes": {"grokking": {"every": 100}},
        },
    ),
    _preset(
        "grokking: modular addition, one-layer transformer",
        "The same task and optimizer with Nanda et al. (2023)'s model: tokens 'a b =', d_model "
        "128, 4 heads, a 512-unit ReLU MLP, no LayerNorm, read out at the last position.  It "
        "memorizes by step 200 and generalizes at step 5,400 (seed 0; seed 1: 2,600); about "
        "14 minutes on a loaded two-core CPU (a step costs about twice the MLP's).",
        {
            "name": "grokking-modular-addition-transformer",
            "task": {
                "kind": "modular",
                "p": 97,
                "op": "add",
                "train_fraction": 0.4,
                "model": "transformer",
                "embed_dim": 128,
                "heads": 4,
                "hidden": 512,
            },
            "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1.0, "betas": [0.9, 0.98]},
            "steps": 7000,
            "log_every": 10,
            "probes": {"grokking": {"every": 100}},
        },
    ),
]
PRESETS += [_preset(name, description, config) for name, description, config in ZOO_PRESETS]
PRESETS += [_preset(name, description, config) for name, description, config in DATASET_PRESETS]
