"""Base distributions: small modules so that ``flow.to(device)`` moves them with the rest of the model.

Each has ``log_prob(z, context=None) -> [batch]`` and ``sample(n, context=None, generator=None) -> [n, *event]``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ctflows.core.counts import non_negative_count, positive_count
from ctflows.core.transform import sum_except_batch
from ctflows.core.validation import batched_shape
from ctflows.errors import InputError


def _as_shape(event_shape: int | tuple[int, ...], owner: str) -> tuple[int, ...]:
    dims = (event_shape,) if not isinstance(event_shape, (tuple, list, torch.Size)) else tuple(event_shape)
    return tuple(positive_count(owner, "each event dimension", d) for d in dims)


class Distribution(nn.Module):
    """Base class: a density on ``event_shape`` with exact ``log_prob`` and ``sample``."""

    event_shape: tuple[int, ...]
    context_features: int | None = None

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def _check_points(self, z: Tensor) -> None:
        """Shape and type of ``z`` (values are not checked: a flow's latents may overflow, and give -inf)."""
        owner, want = type(self).__name__, batched_shape(self.event_shape)
        if not isinstance(z, Tensor) or not z.is_floating_point():
            kind = f"dtype {z.dtype}" if isinstance(z, Tensor) else type(z).__name__
            raise InputError(f"{owner}: points must be a floating-point tensor {want}, got {kind}")
        if tuple(z.shape[1:]) != self.event_shape or z.dim() != len(self.event_shape) + 1:
            raise InputError(f"{owner}: points must have shape {want}, got {list(z.shape)}")

    def _check_count(self, n: object) -> int:
        return non_negative_count(f"{type(self).__name__}.sample", "n", n, InputError)


class StandardNormal(Distribution):
    """N(0, I) on ``event_shape``: log p(z) = -½‖z‖² - (D/2) log 2π."""

    def __init__(self, event_shape: int | tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = _as_shape(event_shape, "StandardNormal")
        # A buffer only so that .to(device, dtype) tells sample() where to put new tensors.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        self._check_points(z)
        d = math.prod(self.event_shape)
        return -0.5 * sum_except_batch(z**2) - 0.5 * d * math.log(2 * math.pi)

    def sample(self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        a = self._anchor
        return torch.randn((self._check_count(n), *self.event_shape), generator=generator, device=a.device, dtype=a.dtype)


class DiagonalNormal(Distribution):
    """N(μ, diag σ²) with learnable μ and log σ, initialised to N(0, I)."""

    def __init__(self, event_shape: int | tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = _as_shape(event_shape, "DiagonalNormal")
        self.loc = nn.Parameter(torch.zeros(self.event_shape))
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        self._check_points(z)
        u = (z - self.loc) * torch.exp(-self.log_scale)
        d = math.prod(self.event_shape)
        return -0.5 * sum_except_batch(u**2) - sum_except_batch(self.log_scale.expand_as(z)) - 0.5 * d * math.log(2 * math.pi)

    def sample(self, n: int, context: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn((self._check_count(n), *self.event_shape), generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        return self.loc + torch.exp(self.log_scale) * eps
