"""The standard normal quantile Φ⁻¹ from log-probabilities, accurate in both tails.

    z = Φ⁻¹(p)   given  (log p, log(1 - p))

Near p = 1 the number p itself has lost the digits that decide z (1 - 1e-17 rounds to 1 in float64), so
the caller passes log p and log(1 - p), each computed without cancellation, and z is taken from the
smaller of the two: z = -t(log p) if p < ½ else t(log(1 - p)), t(ℓ) = -Φ⁻¹(e^ℓ) ≥ 0 for ℓ ≤ log ½. While e^ℓ
is a normal number t(ℓ) = -ndtri(e^ℓ); below that (ℓ < log of the smallest normal) it starts from the
asymptotic t² ≈ a - log a - log 2π, a = -2ℓ, and takes three Newton steps on log Φ(-t) = ℓ, quadratically
convergent there. The steps work with u = t/√2 (t² itself overflows near the most negative ℓ) and with the
Mills ratio R(t) = Φ(-t)/φ(t) from its asymptotic series for large t (as a difference of two logs it loses
every digit there). So z is finite for every finite pair of logs: a CDF map built on it never saturates.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


_SERIES_FROM = 50.0


def _log_mills_ratio(t: Tensor) -> Tensor:
    """log R(t), R(t) = Φ(-t)/φ(t), for t > 0: the exact difference of logs up to ``_SERIES_FROM``, beyond it
    R(t) = (1/t)(1 - 1/t² + 3/t⁴ - 15/t⁶ + 105/t⁸ - …), whose next term is below 1e-14 there."""
    near = t.clamp_max(_SERIES_FROM)
    exact = torch.special.log_ndtr(-near) + 0.5 * near.square() + 0.5 * math.log(2 * math.pi)
    far = t.clamp_min(_SERIES_FROM)
    w = far.reciprocal().square()
    series = -torch.log(far) + torch.log1p(w * (-1 + w * (3 + w * (-15 + w * 105))))
    return torch.where(t > _SERIES_FROM, series, exact)


def _upper_tail_quantile(log_p: Tensor) -> Tensor:
    """t(ℓ) = -Φ⁻¹(e^ℓ) for ℓ ≤ log ½, elementwise, differentiable."""
    floor = math.log(torch.finfo(log_p.dtype).tiny) + 1.0
    # Both branches see inputs in their own range, so neither produces inf/NaN that torch.where would
    # turn into NaN gradients.
    direct = -torch.special.ndtri(torch.exp(log_p.clamp_min(floor)))
    deep = log_p.clamp_max(floor)
    # u = t/√2 from u² ≈ -ℓ - ½ log(-2ℓ) - ½ log 2π, without forming -2ℓ (it overflows near the dtype's limit).
    u = torch.sqrt(-deep - 0.5 * (math.log(2.0) + torch.log(-deep)) - 0.5 * math.log(2 * math.pi))
    root = torch.sqrt(-deep)
    for _ in range(3):
        # Newton on g(t) = log Φ(-t) - ℓ, g'(t) = -1/R(t): t += g R, with log Φ(-t) = -u² - ½ log 2π + log R;
        # -u² - ℓ as a product, which neither overflows nor cancels.
        log_ratio = _log_mills_ratio(math.sqrt(2.0) * u)
        residual = (root - u) * (root + u) - 0.5 * math.log(2 * math.pi) + log_ratio
        u = u + residual * torch.exp(log_ratio) / math.sqrt(2.0)
    return torch.where(log_p > floor, direct, math.sqrt(2.0) * u)


def normal_quantile(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Φ⁻¹(p) from ``log_p = log p`` and ``log_q = log(1 - p)`` (same shape), finite whenever both are."""
    lower = log_p < log_q  # p < ½: the lower tail carries the digits
    ell = torch.where(lower, log_p, log_q).clamp_max(math.log(0.5))
    t = _upper_tail_quantile(ell)
    return torch.where(lower, -t, t)
