"""A smooth bound on a log-scale: ``b · tanh(s / b)``.

It keeps |s| < b so no single layer can blow a point up or collapse it, and has slope 1 at 0 so it does
not slow learning near the identity.
Shared by the affine coupling and the masked autoregressive layer.
"""
from __future__ import annotations

import torch
from torch import Tensor


def soft_clamp(s: Tensor, bound: float) -> Tensor:
    """``bound · tanh(s / bound)``, elementwise; any shape."""
    return bound * torch.tanh(s / bound)

