"""A fixed per-feature asinh that turns heavy tails into light ones before a flow models them.

    z = asinh(x / s),      log|det J| = -Σ_i [log s_i + log cosh z_i]

Near 0 the map is x/s; far out it is sign(x) log(2|x|/s), so a density with power-law tails (Cauchy,
Student-t) becomes one with exponential tails, which a flow from a Gaussian base can fit (such flows keep
light tails: Jaini et al., "Tails of Lipschitz triangular flows", 2020; measured in docs/nonparametric.md,
"Heavy tails"). The inverse x = s sinh(z) gives back the heavy tails. The transform itself is the
inverse hyperbolic sine of Burbidge, Magee & Robb (1988). log cosh is written as
|z| + log1p(e^{-2|z|}) - log 2, finite for every finite z.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.core.counts import positive_count
from ctflows.core.transform import Transform
from ctflows.errors import ConfigurationError, InputError


def _log_cosh(z: Tensor) -> Tensor:
    magnitude = z.abs()
    return magnitude + torch.log1p(torch.exp(-2 * magnitude)) - math.log(2.0)


class Asinh(Transform):
    """``z = asinh(x / scale)`` per feature, with fixed ``scale [D] > 0``; shapes ``[B, D] -> [B, D]``.

    Args:
        features: D.
        scale: where the map turns from linear to logarithmic, one number or one per feature (a buffer,
            never trained). Data in units of about 1 suit the default.
    """

    def __init__(self, features: int, scale: float | Tensor = 1.0) -> None:
        super().__init__()
        features = positive_count("Asinh", "features", features)
        try:
            scale = torch.as_tensor(scale, dtype=torch.get_default_dtype()).expand(features).clone()
        except (TypeError, ValueError, RuntimeError):
            raise ConfigurationError(f"Asinh: scale must be a number or {features} numbers, got {scale!r}") from None
        if not bool((torch.isfinite(scale) & (scale > 0)).all()):
            raise ConfigurationError(f"Asinh: scale must be finite and > 0, got {scale.tolist()}")
        self.event_shape = (features,)
        self.register_buffer("scale", scale)

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        z = torch.asinh(x / self.scale)
        return z, -(self.scale.log() + _log_cosh(z)).sum(dim=1)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        x = self.scale * torch.sinh(z)
        if not bool(torch.isfinite(x).all()):
            largest = float(z.abs().max())
            raise InputError(
                f"Asinh: inverse input reaches |z| = {largest:.4g}, where s sinh(z) overflows {z.dtype}; "
                "such a sample lies beyond every number the data could hold (use float64, or look at what made it)"
            )
        return x, (self.scale.log() + _log_cosh(z)).sum(dim=1)

    def extra_repr(self) -> str:
        return f"features={self.event_shape[0]}, scale={self.scale.tolist()}"
