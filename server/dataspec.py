"""What a model needs to know about its data: the contract between data sets and the model zoo.

Pure Python (no torch) so that the server validates a ``model`` against a data set's shape at
submit time exactly as the worker builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DataSpec:
    """The shape of one example and what is predicted from it.

    ``input``: ``"vector"`` (``shape == (features,)``), ``"image"`` (``shape == (channels, height,
    width)``) or ``"tokens"`` (``shape == (context,)``, integer ids below ``vocab``).
    ``target``: ``"class"`` (one of ``n_classes`` per example) or ``"next_token"`` (one of
    ``vocab`` per position; losses per example are per sequence).
    """

    input: Literal["vector", "image", "tokens"]
    shape: tuple[int, ...]
    n_classes: int
    target: Literal["class", "next_token"] = "class"
    vocab: int | None = None
