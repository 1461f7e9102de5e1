"""The task's builder, imported only by the workers: the data and a fresh model."""

from __future__ import annotations

import torch

from observatory.training import Task, mlp
from observatory_sparse_parity.schema import SparseParityTask


def build(task: SparseParityTask, seed: int) -> Task:
    """Bits, the relevant subset and the split all come from ``seed``; labels are 0 (even
    number of −1 among the relevant bits) or 1."""
    generator = torch.Generator().manual_seed(seed)
    relevant = torch.randperm(task.n_bits, generator=generator)[: task.k]
    n = task.n_train + task.n_test
    bits = torch.randint(0, 2, (n, task.n_bits), generator=generator).float() * 2 - 1
    labels = (bits[:, relevant].prod(dim=1) < 0).long()
    torch.manual_seed(seed)
    model = mlp(task.n_bits, task.hidden, task.depth, 2)
    cut = task.n_train
    return Task(bits[:cut], labels[:cut], bits[cut:], labels[cut:], model, n_classes=2)
