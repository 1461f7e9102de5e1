"""Presets of the model zoo on images (appended to ``server.presets.PRESETS``).

Their data is ``IMAGES``: for now scikit-learn's digits as 1×8×8 images, the only image data a
worker has without a data set on disk.  The papers' data is a stored CIFAR-10: repoint ``IMAGES``
(and the descriptions) to the stored data set's task once it exists; the models, optimizers and
probes stay as they are.  ``tests/unit/test_zoo_presets.py`` runs each at reduced size.
"""

from __future__ import annotations

IMAGES = {"kind": "digits"}  # the train split: 1,348 images of 10 classes

EOS_RESNET = {
    "name": "eos-resnet",
    "task": IMAGES,
    "model": {"kind": "resnet", "depth": 20, "width": 1.0, "norm": "none"},
    "optimizer": {"name": "sgd", "lr": 0.04},
    "steps": 2000,
    "log_every": 10,
    "probes": {"hessian": {"every": 20, "k": 1, "batch_size": 5000, "smallest": False}},
}

COLLAPSE_RESNET = {
    "name": "collapse-resnet",
    "task": IMAGES,
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
        "there while the loss keeps falling, non-monotonically.  Here on digits as 8×8 images "
        "until a stored CIFAR-10 is available (a reduced run is in docs/models.md); a GPU run.",
        EOS_RESNET,
    ),
    (
        "neural collapse: ResNet on images",
        "A ResNet-20 with BatchNorm, SGD + momentum, weight decay 5e-4 and a cosine schedule on "
        "minibatches of 128, trained far past 100 % train accuracy, with NC1 every 50 steps at "
        "the classifier and at the input of each stage: in the papers within-class variability "
        "collapses, most at the last layers (Papyan et al. 2020; per layer, Rangamani et al. "
        "2023).  Here on digits as 8×8 images until a stored CIFAR-10 is available; a GPU run.",
        COLLAPSE_RESNET,
    ),
]
