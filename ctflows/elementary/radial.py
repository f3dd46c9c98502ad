"""Radial flow (Rezende & Mohamed 2015): contract or expand around a centre x₀.

    forward (data -> base, analytic):  z = x + β (x - x₀) / (α + r),   r = ‖x - x₀‖
    log|det J| = (D - 1) log(1 + β/(α + r)) + log(1 + αβ/(α + r)²)
    α = softplus(α̂) > 0,  β = -α + softplus(β̂) > -α  (invertible)

The inverse is also closed form: ‖z - x₀‖ = ρ = r (1 + β/(α + r)) gives r² + (α + β - ρ) r - αρ = 0,
whose non-negative root is taken in the cancellation-free form, then x = x₀ + (z - x₀) / (1 + β/(α + r)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ctflows.core.counts import positive_count
from ctflows.core.transform import Transform


class Radial(Transform):
    """``z = x + β (x - x₀) / (α + ‖x - x₀‖)``; shapes ``[B, D] -> [B, D]``; both directions analytic.

    Starts as the identity: α̂ = β̂ = 0 gives α = log 2 and β = 0.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        features = positive_count("Radial", "features", features)
        self.event_shape = (features,)
        self.center = nn.Parameter(torch.zeros(features))
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def alpha_beta(self) -> tuple[Tensor, Tensor]:
        """α > 0 and β > -α, the constrained parameters."""
        alpha = F.softplus(self.alpha_raw)
        return alpha, F.softplus(self.beta_raw) - alpha

    def _logdet(self, r: Tensor, alpha: Tensor, gap: Tensor) -> Tensor:
        # With gap = α + β = softplus(β̂) > 0: 1 + β/(α + r) = (gap + r)/(α + r) and
        # 1 + αβ/(α + r)² = (r² + 2αr + α·gap)/(α + r)², sums of positive terms, so no cancellation as β -> -α.
        d = self.event_shape[0]
        log_ar = torch.log(alpha + r)
        return (d - 1) * (torch.log(gap + r) - log_ar) + torch.log(r * (r + 2 * alpha) + alpha * gap) - 2 * log_ar

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        alpha, gap = F.softplus(self.alpha_raw), F.softplus(self.beta_raw)
        diff = x - self.center
        r = diff.norm(dim=1)
        return x + ((gap - alpha) / (alpha + r))[:, None] * diff, self._logdet(r, alpha, gap)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        alpha, gap = F.softplus(self.alpha_raw), F.softplus(self.beta_raw)
        diff = z - self.center
        rho = diff.norm(dim=1)
        p = gap - rho  # the quadratic r² + p r - αρ = 0
        root = torch.sqrt(p.square() + 4 * alpha * rho)
        # (-p + root) / 2 cancels when p > 0; there 2αρ / (p + root) is the same number without cancellation
        r = torch.where(p > 0, 2 * alpha * rho / (p + root).clamp_min(torch.finfo(z.dtype).tiny), (root - p) / 2)
        x = self.center + diff * ((alpha + r) / (gap + r))[:, None]
        return x, -self._logdet(r, alpha, gap)


__all__ = ["Radial"]
