"""A fixed per-feature asinh that turns heavy tails into light ones before a flow models them.

    z = asinh(x / s),      log|det J| = -Σ_i [log s_i + log cosh z_i]

Near 0 the map is x/s; far out it is sign(x) log(2|x|/s), so a density with power-law tails (Cauchy,
Student-t) becomes one with exponential tails, which a flow from a Gaussian base can fit (such flows keep
light tails: Jaini et al., "Tails of Lipschitz triangular flows", 2020; measured in docs/nonparametric.md,
"Heavy tails"). The inverse x = s sinh(z) gives back the heavy tails. The transform itself is the
inverse hyperbolic sine of Burbidge, Magee & Robb (1988). log cosh is written as
|z| + log1p(e^{-2|z|}) - log 2, finite for every finite z; asinh(x/s) and s sinh(z) are computed without
forming x/s or sinh(z) where those overflow (scale < 1 near the dtype's largest numbers).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.core.counts import positive_count
from ctflows.core.transform import Transform
from ctflows.errors import ConfigurationError, InputError


def _asinh_of_ratio(x: Tensor, scale: Tensor) -> Tensor:
    """``asinh(x / scale)`` without forming ``x / scale`` where it would overflow (|x| near the dtype's max, scale < 1).

    For |x| >= s it is sign(x) (log|x| - log s + log(1 + sqrt(1 + (s/x)²))). Each branch sees only inputs it
    can take, so neither leaves an inf or NaN in the other's gradient.
    """
    far = x.abs() >= scale
    near_x = torch.where(far, torch.zeros_like(x), x)
    far_x = torch.where(far, x, scale.expand_as(x)).abs()
    far_z = far_x.log() - scale.log() + torch.log1p(torch.sqrt(1 + (scale / far_x) ** 2))
    return torch.where(far, far_z.copysign(x), torch.asinh(near_x / scale))


def _scaled_sinh(z: Tensor, scale: Tensor) -> Tensor:
    """``scale * sinh(z)``, finite wherever the product is (sinh alone overflows first where scale < 1).

    For |z| >= 1 it is sign(z) exp(|z| + log(s/2)) (1 - e^{-2|z|}); each branch sees only inputs it can take.
    """
    far = z.abs() >= 1
    near_z = torch.where(far, torch.zeros_like(z), z)
    far_z = torch.where(far, z, torch.ones_like(z)).abs()
    far_x = torch.exp(far_z + (scale / 2).log()) * -torch.expm1(-2 * far_z)
    return torch.where(far, far_x.copysign(z), scale * torch.sinh(near_z))


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
            given = torch.as_tensor(scale)
            # Read as the default dtype straight away, a boolean would be 1.0 and a complex number its real part.
            real = not (given.dtype == torch.bool or given.is_complex())
            values = given.to(torch.get_default_dtype()).expand(features).clone() if real else None
        except (TypeError, ValueError, RuntimeError):
            values = None
        if values is None:
            raise ConfigurationError(f"Asinh: scale must be a number or {features} real numbers, got {scale!r}")
        scale = values
        if not bool((torch.isfinite(scale) & (scale > 0)).all()):
            raise ConfigurationError(f"Asinh: scale must be finite and > 0, got {scale.tolist()}")
        self.event_shape = (features,)
        self.register_buffer("scale", scale)

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        z = _asinh_of_ratio(x, self.scale)
        return z, -(self.scale.log() + _log_cosh(z)).sum(dim=1)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        x = _scaled_sinh(z, self.scale)
        if not bool(torch.isfinite(x).all()):
            largest = float(z.abs().max())
            raise InputError(
                f"Asinh: inverse input reaches |z| = {largest:.4g}, where s sinh(z) overflows {z.dtype}; "
                "such a sample lies beyond every number the data could hold (use float64, or look at what made it)"
            )
        return x, (self.scale.log() + _log_cosh(z)).sum(dim=1)

    def extra_repr(self) -> str:
        return f"features={self.event_shape[0]}, scale={self.scale.tolist()}"
