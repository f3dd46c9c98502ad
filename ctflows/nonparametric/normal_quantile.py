"""The standard normal quantile Φ⁻¹ from log-probabilities, accurate in both tails.

    z = Φ⁻¹(p)   given  (log p, log(1 - p))

Near p = 1 the number p itself has lost the digits that decide z (1 - 1e-17 rounds to 1 in float64), so
the caller passes log p and log(1 - p), each computed without cancellation, and z is taken from the
smaller of the two: z = -t(log p) if p < ½ else t(log(1 - p)), t(ℓ) = -Φ⁻¹(e^ℓ) ≥ 0 for ℓ ≤ log ½. While e^ℓ
is a normal number t(ℓ) = -ndtri(e^ℓ); below that (ℓ < log of the smallest normal) it starts from the
asymptotic t² ≈ a - log a - log 2π, a = -2ℓ, and takes three Newton steps on log Φ(-t) = ℓ, quadratically
convergent there. So z is finite for every finite pair of logs: a CDF map built on it never saturates.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _upper_tail_quantile(log_p: Tensor) -> Tensor:
    """t(ℓ) = -Φ⁻¹(e^ℓ) for ℓ ≤ log ½, elementwise, differentiable."""
    floor = math.log(torch.finfo(log_p.dtype).tiny) + 1.0
    # Both branches see inputs in their own range, so neither produces inf/NaN that torch.where would
    # turn into NaN gradients.
    direct = -torch.special.ndtri(torch.exp(log_p.clamp_min(floor)))
    deep = log_p.clamp_max(floor)
    a = -2 * deep
    t = torch.sqrt(a - torch.log(a) - math.log(2 * math.pi))
    for _ in range(3):
        # d/dt log Φ(-t) = -φ(t)/Φ(-t), so Newton adds (log Φ(-t) - ℓ) · Φ(-t)/φ(t).
        log_tail = torch.special.log_ndtr(-t)
        log_density = -0.5 * t.square() - 0.5 * math.log(2 * math.pi)
        t = t + (log_tail - deep) * torch.exp(log_tail - log_density)
    return torch.where(log_p > floor, direct, t)


def normal_quantile(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Φ⁻¹(p) from ``log_p = log p`` and ``log_q = log(1 - p)`` (same shape), finite whenever both are."""
    lower = log_p < log_q  # p < ½: the lower tail carries the digits
    ell = torch.where(lower, log_p, log_q).clamp_max(math.log(0.5))
    t = _upper_tail_quantile(ell)
    return torch.where(lower, -t, t)
