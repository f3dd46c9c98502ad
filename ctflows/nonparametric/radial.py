"""Localized radial expansion about a centre (Tabak & Turner 2013, §4): an elementary near-identity map.

    y = x0 + (1 + β f(r)) (x - x0),    r = |x - x0|,    f(r) = exp(-r² / 2α²)
    log|det ∂y/∂x| = (D - 1) log(1 + β f) + log(1 + β f (1 - r²/α²))

Points are pushed away from (β > 0) or pulled toward (β < 0) the centre x0 within a few bandwidths α;
far away the map is the identity. Invertibility: the map keeps directions from x0 and sends radius r to
ρ(r) = r (1 + β f(r)), whose slope ρ'(r) = 1 + β e^{-s}(1 - 2s), s = r²/2α², ranges over 1 + β·[-2e^{-3/2}, 1];
so the map is a diffeomorphism iff -1 < β < e^{3/2}/2 ≈ 2.24. The inverse solves ρ(r) = |y - x0| for r,
a 1-D monotone equation, by bracketed Newton (|ρ(r) - r| ≤ |β| α e^{-1/2} gives the bracket), then
x = x0 + (y - x0) / (1 + β f(r)).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ctflows.core.transform import Transform
from ctflows.errors import ConfigurationError
from ctflows.nonparametric.root import solve_increasing

BETA_MIN = -1.0
BETA_MAX = math.exp(1.5) / 2
_SAFETY = 0.99  # keeps rounding in the sigmoid off the interval's ends, where the Jacobian is singular


def radial_forward(x: Tensor, centre: Tensor, beta: Tensor, bandwidth: Tensor) -> tuple[Tensor, Tensor]:
    """The map and its log-det, differentiable in every argument: ``x [B, D] -> (y [B, D], [B])``."""
    u = x - centre
    q = u.square().sum(dim=1) / bandwidth.square()  # r²/α²
    f = torch.exp(-q / 2)
    scale = 1 + beta * f
    slope = 1 + beta * f * (1 - q)  # ρ'(r)
    logdet = (x.shape[1] - 1) * torch.log(scale) + torch.log(slope)
    return centre + scale.unsqueeze(1) * u, logdet


class RadialExpansion(Transform):
    """``y = x0 + (1 + β exp(-|x - x0|²/2α²))(x - x0)``, shapes ``[B, D] -> [B, D]``.

    Args:
        centre: x0, ``[D]``.
        bandwidth: α > 0.
        beta: β, in (-1, e^{3/2}/2) (scaled by 0.99); 0 is the identity.

    x0, log α and β are parameters, so a fitted chain can be fine-tuned by gradient. β is stored as
    β = lo + (hi - lo)·sigmoid(θ) so that every value of θ gives an invertible map.
    """

    def __init__(self, centre: Tensor, bandwidth: float | Tensor = 1.0, beta: float | Tensor = 0.0) -> None:
        super().__init__()
        centre = torch.as_tensor(centre)
        if centre.dim() != 1:
            raise ConfigurationError(f"RadialExpansion: centre must have shape [D], got {list(centre.shape)}")
        dtype = centre.dtype if centre.is_floating_point() else torch.get_default_dtype()
        bandwidth = torch.as_tensor(bandwidth, dtype=dtype, device=centre.device)
        beta = torch.as_tensor(beta, dtype=dtype, device=centre.device)
        lo, hi = _SAFETY * BETA_MIN, _SAFETY * BETA_MAX
        if not bool(bandwidth > 0) or not bool((beta > lo) & (beta < hi)):
            raise ConfigurationError(
                f"RadialExpansion: need bandwidth > 0 and {lo:.4f} < beta < {hi:.4f} (invertibility), "
                f"got bandwidth={float(bandwidth):g}, beta={float(beta):g}"
            )
        self.event_shape = (centre.numel(),)
        self.centre = nn.Parameter(centre.to(dtype).clone())
        self.log_bandwidth = nn.Parameter(torch.log(bandwidth))
        self.beta_logit = nn.Parameter(torch.logit((beta - lo) / (hi - lo)))

    @property
    def beta(self) -> Tensor:
        """β as a 0-dim tensor."""
        lo, hi = _SAFETY * BETA_MIN, _SAFETY * BETA_MAX
        return lo + (hi - lo) * torch.sigmoid(self.beta_logit)

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return radial_forward(x, self.centre, self.beta, torch.exp(self.log_bandwidth))

    def _inverse(self, y: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        beta, alpha = self.beta, torch.exp(self.log_bandwidth)
        target = (y - self.centre).norm(dim=1)  # ρ(r), the radius after the map

        def rho(r: Tensor) -> tuple[Tensor, Tensor]:
            f = torch.exp(-(r / alpha).square() / 2)
            return r * (1 + beta * f), 1 + beta * f * (1 - (r / alpha).square())

        # r lies between ρ and ρ/(1 + β) (the scale 1 + βf lies between 1 and 1 + β) and within
        # max |ρ(r) - r| = |β| α e^{-1/2} of ρ; both bounds are padded by a little for rounding.
        pad = 1e-9 * (1 + target)
        reach = beta.abs() * alpha * math.exp(-0.5)
        shrunk = target / (1 + beta)
        lo = torch.maximum(torch.minimum(target, shrunk), target - reach) - pad
        hi = torch.minimum(torch.maximum(target, shrunk), target + reach) + pad
        start = target / (1 + beta * torch.exp(-(target / alpha).square() / 2))  # one fixed-point step
        r, iterations = solve_increasing(rho, target, lo.clamp_min(0), hi, start=start, owner="RadialExpansion")
        self.stats = {"iterations": iterations}
        # One differentiable Newton step at the root carries the gradients in y and the parameters.
        value, slope = rho(r.detach())
        r = r.detach() - (value - target) / slope
        x = self.centre + (y - self.centre) / (1 + beta * torch.exp(-(r / alpha).square() / 2)).unsqueeze(1)
        _, logdet = radial_forward(x, self.centre, beta, alpha)
        return x, -logdet
