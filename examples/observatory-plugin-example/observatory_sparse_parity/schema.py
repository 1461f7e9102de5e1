"""The task's schema: what a user configures, and what the server needs to check the limits.

Imported by the API process, so it imports no torch (nor ``builder``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from observatory.plugins import DataSpec, PluginTask, field_error

FLOAT32, INT64 = 4, 8


class SparseParityTask(PluginTask):
    """(n, k)-sparse parity (Barak et al. 2022, "Hidden progress in deep learning"): inputs are
    n random ±1 bits, the label is the parity (product) of k of them chosen by the run's seed.
    An MLP's loss sits on a plateau for a long time, then drops suddenly; with a fixed, small
    training set the test accuracy can follow long after the training accuracy (grokking,
    Merrill et al. 2023)."""

    model_config = ConfigDict(title="Sparse parity")

    kind: Literal["sparse_parity"] = "sparse_parity"
    n_bits: int = Field(default=30, ge=2, le=1000, description="input bits n")
    k: int = Field(default=3, ge=1, le=20, description="relevant bits k (the parity's degree)")
    n_train: int = Field(default=1000, ge=10, le=1_000_000, description="training examples")
    n_test: int = Field(default=1000, ge=10, le=1_000_000, description="test examples")
    hidden: int = Field(default=256, ge=1, le=16384, description="MLP hidden units")
    depth: int = Field(default=1, ge=1, le=8, description="MLP hidden layers")

    @model_validator(mode="after")
    def _k_within_n(self) -> SparseParityTask:
        if self.k > self.n_bits:
            raise field_error(self, "k", message=f"must be at most n_bits ({self.n_bits})")
        return self

    def parameter_count(self) -> int:
        """``depth`` Linear+ReLU layers of ``hidden`` units and a Linear head to 2 classes."""
        widths = [self.n_bits] + [self.hidden] * self.depth
        layers = sum(w * self.hidden + self.hidden for w in widths[:-1])
        return layers + self.hidden * 2 + 2

    def dataset_size(self) -> tuple[int, int]:
        """float32 bits and an int64 label per example, both splits."""
        n = self.n_train + self.n_test
        return n * (self.n_bits + 1), n * (self.n_bits * FLOAT32 + INT64)

    def data_spec(self) -> DataSpec:
        """n ±1 features, two classes: any zoo model that takes vectors (``RunConfig.model``)."""
        return DataSpec("vector", (self.n_bits,), 2)


SCHEMA = SparseParityTask
BUILDER = "observatory_sparse_parity.builder:build"
