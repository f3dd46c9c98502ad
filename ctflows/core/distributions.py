"""Base distributions: small modules so that ``flow.to(device)`` moves them with the rest of the model.

Each has ``log_prob(z, context=None) -> [batch]`` and ``sample(n, context=None, generator=None) -> [n, *event]``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ctflows.core.transform import sum_except_batch


def _as_shape(event_shape: int | tuple[int, ...]) -> tuple[int, ...]:
    return (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)


class Distribution(nn.Module):
    """Base class: a density on ``event_shape`` with exact ``log_prob`` and ``sample``."""

    event_shape: tuple[int, ...]
    context_features: int | None = None

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError


class StandardNormal(Distribution):
    """N(0, I) on ``event_shape``: log p(z) = -½‖z‖² - (D/2) log 2π."""

    def __init__(self, event_shape: int | tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = _as_shape(event_shape)
        # A buffer only so that .to(device, dtype) tells sample() where to put new tensors.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        d = math.prod(self.event_shape)
        return -0.5 * sum_except_batch(z**2) - 0.5 * d * math.log(2 * math.pi)

    def sample(self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        a = self._anchor
        return torch.randn((n, *self.event_shape), generator=generator, device=a.device, dtype=a.dtype)


class DiagonalNormal(Distribution):
    """N(μ, diag σ²) with learnable μ and log σ, initialised to N(0, I)."""

    def __init__(self, event_shape: int | tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = _as_shape(event_shape)
        self.loc = nn.Parameter(torch.zeros(self.event_shape))
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        u = (z - self.loc) * torch.exp(-self.log_scale)
        d = math.prod(self.event_shape)
        return -0.5 * sum_except_batch(u**2) - sum_except_batch(self.log_scale.expand_as(z)) - 0.5 * d * math.log(2 * math.pi)

    def sample(self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn((n, *self.event_shape), generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        return self.loc + torch.exp(self.log_scale) * eps
