"""The standard CIFAR augmentations, drawn on the device: a random crop of the image padded by
``padding`` pixels (zeros, the mean after normalisation) and a horizontal flip with
probability 1/2.

Each step's draws come from a generator seeded by the run's seed and the step, so a resumed run
replays the same crops without checkpointing any state, on any device.
"""

from __future__ import annotations

import torch
from torch.nn import functional


class CropFlip:
    """``augment(images, step)``: images ``(n, c, h, w)`` → cropped and flipped, same shape."""

    def __init__(self, seed: int, padding: int = 4) -> None:
        self.seed, self.padding = seed, padding

    def __call__(self, images: torch.Tensor, step: int) -> torch.Tensor:
        n, c, h, w = images.shape
        p, device = self.padding, images.device
        generator = torch.Generator(device=device).manual_seed(self.seed * 1_000_003 + step)
        shift_y, shift_x = torch.randint(
            0, 2 * p + 1, (2, n, 1), generator=generator, device=device
        )
        flip = torch.rand(n, generator=generator, device=device) < 0.5
        rows = (shift_y + torch.arange(h, device=device))[:, None, :, None]  # (n, 1, h, 1)
        cols = shift_x + torch.arange(w, device=device)  # (n, w)
        cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # (n, 1, 1, w)
        padded = functional.pad(images, (p, p, p, p))
        batch = torch.arange(n, device=device)[:, None, None, None]
        channel = torch.arange(c, device=device)[None, :, None, None]
        return padded[batch, channel, rows, cols]
