"""Presets of the model zoo on images (appended to ``server.presets.PRESETS``).

Their data is ``DEMO_IMAGES``, make-demo's digits as an image folder, which ``observatory up``
writes on a machine's first start, so the presets train anywhere.  The papers' data is a stored
CIFAR-10: where a worker has one named ``cifar10`` (``observatory datasets import
…/cifar-10-batches-py --name cifar10``), ``GET /api/presets`` offers them on a 5,000-image subset
of it instead (``on_paper_data``); the models, optimizers and probes stay as they are.
``tests/unit/test_zoo_presets.py`` runs each at reduced size.
"""

from __future__ import annotations

from server.datasets import Manifest

DEMO_IMAGES = {"kind": "dataset", "name": "digits-images", "normalize": True}
"""make-demo's digits as PNGs: 1,347 training images of 1×8×8 in 10 classes."""
CIFAR10_SUBSET = {"kind": "dataset", "name": "cifar10", "subset": 5000, "normalize": True}
"""The 5,000-image CIFAR-10 subset of Cohen et al. (2021), drawn once from the run's seed."""


def on_paper_data(config: dict, cifar: Manifest | None) -> dict:
    """``config`` on ``CIFAR10_SUBSET`` if it trains on ``DEMO_IMAGES`` and ``cifar`` (the
    manifest of the set named ``cifar10`` the workers have, if any) is 3×32×32 images; else
    ``config``."""
    paper_shaped = cifar is not None and cifar.kind == "image" and cifar.shape == (3, 32, 32)
    if config["task"].get("name") == DEMO_IMAGES["name"] and paper_shaped:
        return config | {"task": config["task"] | CIFAR10_SUBSET}
    return config


EOS_RESNET = {
    "name": "eos-resnet",
    "task": DEMO_IMAGES,
    "model": {"kind": "resnet", "depth": 20, "width": 1.0, "norm": "none"},
    "optimizer": {"name": "sgd", "lr": 0.04},
    "steps": 2000,
    "log_every": 10,
    "probes": {"hessian": {"every": 20, "k": 1, "batch_size": 5000, "smallest": False}},
}

COLLAPSE_RESNET = {
    "name": "collapse-resnet",
    "task": DEMO_IMAGES,
    "model": {"kind": "resnet", "depth": 20, "width": 1.0, "norm": "batchnorm"},
    "optimizer": {
        "name": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "cosine",
    },
    "batch_size": 128,
    "steps": 3000,
    "log_every": 10,
    "train_metrics": "full",
    "probes": {
        "collapse": {
            "every": 50,
            "max_examples": 5000,
            "layers": ["features.stages.0", "features.stages.1", "features.stages.2"],
        }
    },
}

ZOO_PRESETS = [
    (
        "edge of stability: CIFAR-style ResNet",
        "Full-batch gradient descent at lr 0.04 on a ResNet-20 without BatchNorm, with the top "
        "Hessian eigenvalue of the whole training set every 20 steps.  On a 5,000-image CIFAR-10 "
        "subset Cohen et al. (2021) see sharpness rise to 2/lr = 50 (eos.crossed) and hover "
        "there while the loss keeps falling, non-monotonically.  On a worker's stored CIFAR-10 "
        "(a data set named cifar10) it trains on that subset; otherwise on make-demo's digits "
        "image folder (1×8×8; a reduced run is in docs/models.md).  A GPU run.",
        EOS_RESNET,
    ),
    (
        "neural collapse: ResNet on images",
        "A ResNet-20 with BatchNorm, SGD + momentum, weight decay 5e-4 and a cosine schedule on "
        "minibatches of 128, trained far past 100 % train accuracy, with NC1 every 50 steps at "
        "the classifier and at the input of each stage: in the papers within-class variability "
        "collapses, most at the last layers (Papyan et al. 2020; per layer, Rangamani et al. "
        "2023).  On a worker's stored CIFAR-10 (named cifar10) a 5,000-image subset, otherwise "
        "make-demo's digits image folder (1×8×8).  A GPU run.",
        COLLAPSE_RESNET,
    ),
]
