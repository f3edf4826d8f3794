"""Dropout whose CPU mask costs a fraction of torch's: 16 random bits per element, three to a 64-bit draw."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _keep_mask(shape, p: float) -> torch.Tensor:
    """bool (shape): True with probability 1 - p (to 2e-5)."""
    n = math.prod(shape)
    # random_() fills an int64 with 63 random bits: its three low 16-bit words (little-endian) are uniform int16s.
    words = torch.empty((n + 2) // 3, dtype=torch.int64).random_().view(torch.int16).view(-1, 4)[:, :3]
    # Compared where they lie: the bool result is contiguous, so no copy of the words.
    return (words >= round(p * 65536) - 32768).view(-1)[:n].view(shape)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero each element of x with probability p and scale the rest by 1 / (1 - p); x itself when not training.

    On CPU, torch's dropout fills a float mask with bernoulli_ and scales it in separate passes: a Transformer's
    dropouts took 13% of a training step. Comparing random 16-bit integers with a threshold draws the same
    distribution of masks at about 3x the speed and keeps a 1-byte mask for backward. CUDA keeps torch's fused
    kernel.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    return x * _keep_mask(x.shape, p) * (1.0 / (1.0 - p))


class Dropout(nn.Module):
    """nn.Dropout with the fast CPU mask of `dropout`. x: any shape."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
