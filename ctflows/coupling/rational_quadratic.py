"""Monotone rational-quadratic splines with identity tails (Durkan et al. 2019, "Neural Spline Flows").

On bin k = [x_k, x_{k+1}] with width w, height h, slope s = h/w, knot derivatives δ_k, δ_{k+1}, ξ = (x - x_k)/w:

    g(x) = y_k + h (s ξ² + δ_k ξ(1-ξ)) / (s + (δ_k + δ_{k+1} - 2s) ξ(1-ξ))
    g'(x) = s² (δ_{k+1} ξ² + 2s ξ(1-ξ) + δ_k (1-ξ)²) / (s + (δ_k + δ_{k+1} - 2s) ξ(1-ξ))²

K bins cover [-B, B]; outside, g is the identity. The end derivatives are fixed to 1 so the tails join
with a continuous derivative. Shapes: ``x [...]`` with unnormalised parameters ``[..., K]`` (widths,
heights) and ``[..., K - 1]`` (interior derivatives); the result and the elementwise log|g'| are ``[...]``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ctflows.core.counts import real_setting
from ctflows.errors import InputError


def check_spline_settings(
    owner: str, bins: int, bound: object, min_width: object, min_height: object, min_derivative: object
) -> tuple[float, float, float, float]:
    """``(bound, min_width, min_height, min_derivative)`` as floats if a spline of ``bins`` bins can use them.

    An infinite bound gives NaN knots; floors with ``bins × minimum >= 1`` give bins of negative width (a
    non-monotone map); a ``min_derivative`` outside (0, 1) has no shifted softplus for the identity.
    """
    bound = real_setting(owner, "bound", bound, "a finite number > 0, e.g. 3.0", lambda b: b > 0)
    floors = [
        real_setting(owner, name, value, f"a number > 0 with bins × {name} < 1 ({bins} bins), e.g. 1e-3", lambda m: 0 < m * bins < 1)
        for name, value in (("min_width", min_width), ("min_height", min_height))
    ]
    min_derivative = real_setting(owner, "min_derivative", min_derivative, "in (0, 1), e.g. 1e-3", lambda m: 0 < m < 1)
    return bound, *floors, min_derivative


def knot_positions(raw: Tensor, bound: float, minimum: float) -> Tensor:
    """Knots ``[..., K+1]`` from -B to B with bin sizes ``2B (m + (1 - mK) softmax(raw))``.

    The ends are set to ±B exactly (not by a cumulative sum) so that points at ±B land on them.
    """
    k = raw.shape[-1]
    fractions = minimum + (1 - minimum * k) * torch.softmax(raw, dim=-1)
    inner = bound * (2 * torch.cumsum(fractions[..., :-1], dim=-1) - 1)
    edge = inner.new_full((*inner.shape[:-1], 1), bound)
    return torch.cat([-edge, inner, edge], dim=-1)


def knot_derivatives(raw: Tensor, minimum: float) -> Tensor:
    """Derivatives ``[..., K+1]``: 1 at both ends, ``m + softplus(raw + c)`` inside.

    The shift c = log(e^{1-m} - 1) makes raw = 0 give derivative exactly 1, so zero parameters (the
    conditioner's initial output) give s = 1 and δ = 1 everywhere: the identity map.
    """
    shift = math.log(math.expm1(1.0 - minimum))
    inner = minimum + F.softplus(raw + shift)
    one = inner.new_ones((*inner.shape[:-1], 1))
    return torch.cat([one, inner, one], dim=-1)


def _bin(knots: Tensor, v: Tensor) -> Tensor:
    # Index k with knots[k] <= v < knots[k+1]; searching the interior knots only keeps v = ±B (and any
    # rounding past the ends) in the first / last bin, so the index is always in [0, K-1].
    return torch.searchsorted(knots[..., 1:-1].contiguous(), v.unsqueeze(-1), right=True)


def _log_derivative(xi: Tensor, s: Tensor, d0: Tensor, d1: Tensor) -> Tensor:
    t = xi * (1 - xi)
    denominator = s + (d0 + d1 - 2 * s) * t
    numerator = d1 * xi.square() + 2 * s * t + d0 * (1 - xi).square()
    return 2 * torch.log(s) + torch.log(numerator) - 2 * torch.log(denominator)


def rational_quadratic_spline(
    x: Tensor,
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    *,
    bound: float,
    inverse: bool = False,
    min_width: float = 1e-3,
    min_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    """Apply g (or g⁻¹) elementwise: ``x [...]`` -> ``(y [...], log|dy/dx| [...])``.

    Args:
        widths, heights: unnormalised ``[..., K]``; derivatives: unnormalised ``[..., K-1]``.
        bound: B; the spline acts on [-B, B] and is the identity outside.
        inverse: apply g⁻¹, solving the quadratic for ξ in its cancellation-free form.
        min_width, min_height, min_derivative: floors that keep every bin and slope away from zero.
    """
    bins = widths.shape[-1]
    bound, min_width, min_height, min_derivative = check_spline_settings(
        "rational_quadratic_spline", bins, bound, min_width, min_height, min_derivative
    )
    # Mismatched parameters would index knots of different splines without any error from torch.
    if heights.shape != widths.shape or widths.shape[:-1] != x.shape or derivatives.shape != (*x.shape, bins - 1):
        raise InputError(
            f"rational_quadratic_spline: for x {list(x.shape)} and K bins, widths and heights must be [..., K] and "
            f"derivatives [..., K - 1] with ... = x's shape; got {list(widths.shape)}, {list(heights.shape)}, "
            f"{list(derivatives.shape)}"
        )
    inside = (x >= -bound) & (x <= bound)
    # Evaluate the spline on clamped inputs and discard it outside: a masked branch must still be finite,
    # or its NaN gradient leaks through torch.where.
    v = x.clamp(-bound, bound)
    xs = knot_positions(widths, bound, min_width)
    ys = knot_positions(heights, bound, min_height)
    ds = knot_derivatives(derivatives, min_derivative)
    k = _bin(ys if inverse else xs, v)
    x0, x1 = xs.gather(-1, k).squeeze(-1), xs.gather(-1, k + 1).squeeze(-1)
    y0, y1 = ys.gather(-1, k).squeeze(-1), ys.gather(-1, k + 1).squeeze(-1)
    d0, d1 = ds.gather(-1, k).squeeze(-1), ds.gather(-1, k + 1).squeeze(-1)
    w, h = x1 - x0, y1 - y0
    s = h / w
    if inverse:
        # Solved from the bin's nearer end: read from the top (1 - ξ, y_{k+1} - y, δ_k and δ_{k+1} swapped), g is
        # the same rational quadratic, and near y_{k+1} the bottom's form loses digits (b² and 4ac nearly cancel:
        # x came back ~500 ulp short of B at y = B). From the near end, a ξ² + b ξ + c = 0 with c = -s·dy <= 0,
        # and the root in [0, 1] is ξ = 2c / (-b - √(b² - 4ac)): unlike (-b + √·) / 2a it has no cancellation,
        # and its denominator stays below zero (-2hs at the far end, -2b < 0 at the near one). The clamps absorb
        # rounding only.
        top = 2 * v > y0 + y1
        dy = torch.where(top, y1 - v, v - y0)
        near, far = torch.where(top, d1, d0), torch.where(top, d0, d1)
        q = near + far - 2 * s
        a = h * (s - near) + dy * q
        b = h * near - dy * q
        c = -s * dy
        root = torch.sqrt((b.square() - 4 * a * c).clamp_min(0))
        xi = (2 * c / (-b - root)).clamp(0, 1)
        out = torch.lerp(torch.where(top, x1, x0), torch.where(top, x0, x1), xi)
        logdet = -_log_derivative(xi, s, near, far)
    else:
        xi = (v - x0) / w
        t = xi * (1 - xi)
        share = (s * xi.square() + d0 * t) / (s + (d0 + d1 - 2 * s) * t)  # of the bin's height, in [0, 1] but for rounding
        # lerp, not y_k + h·share: that rounds past y_{k+1} (or short of it) at share = 1, so g(B) missed B, by up to
        # 2 ulp above g(B + ulp), and g was not monotone there. lerp is exact at both ends and stays in the bin.
        out = torch.lerp(y0, y1, share.clamp(0, 1))
        logdet = _log_derivative(xi, s, d0, d1)
    return torch.where(inside, out, x), torch.where(inside, logdet, torch.zeros_like(logdet))


__all__ = ["rational_quadratic_spline", "knot_positions", "knot_derivatives"]
