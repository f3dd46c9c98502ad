"""One step of Tabak & Turner's ascent: the local quadratic model of L in the radial map's β, at β = 0.

For x pushed so far, centre x0, bandwidth α, u = x - x0, q = |u|²/α², f = e^{-q/2} (so r f'(r) = -q f):

    L(β) = mean[log|det J_β(x)| + log N(y_β(x))],    y_β = x + β f u
    g = L'(0)  = mean[D f - q f - f x·u]
    h = L''(0) = -mean[(D - 1) f² + (f - q f)² + f² |u|²]  < 0

(differentiate (D-1) log(1 + βf) + log(1 + βf(1 - q)) - |x + βfu|²/2 twice in β). h < 0 whenever any point
has f > 0, so the quadratic model has a maximum at β* = -g/h; the step taken is β* clipped to ±ε, which
keeps every map near the identity (and invertible for ε < 1). The log-likelihood of the whole composition
changes by L(β) - L(0) because earlier maps' log-dets do not depend on β.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ctflows.nonparametric.radial import RadialExpansion


def radial_derivatives(x: Tensor, centre: Tensor, bandwidth: Tensor | float) -> tuple[Tensor, Tensor]:
    """``(L'(0), L''(0))``, two 0-dim tensors: the slope and curvature in β of the mean log-likelihood.

    For the radial map about ``centre [D]`` with ``bandwidth`` α applied to points ``x [N, D]`` and scored
    by N(0, I) (formulas in the module docstring; Tabak & Turner 2013, §3).
    """
    d = x.shape[1]
    u = x - centre
    r2 = u.square().sum(dim=1)
    q = r2 / bandwidth**2
    f = (-q / 2).exp()
    g = (d * f - q * f - f * (x * u).sum(dim=1)).mean()
    h = -((d - 1) * f.square() + (f - q * f).square() + f.square() * r2).mean()
    return g, h


def newton_beta(g: Tensor, h: Tensor, step_limit: float) -> Tensor:
    """β = clip(-g/h, ±ε): the maximiser of L(0) + g β + h β²/2 (h < 0) within the learning rate ε.

    0-dim tensors in and out; 0 when h = 0 (all kernel weights underflowed). Tabak & Turner 2013, §3.
    """
    # When every f underflows, g = h = 0: the clamp makes that a zero step instead of 0/0.
    return (-g / h.clamp_max(-torch.finfo(h.dtype).tiny)).clamp(-step_limit, step_limit)


def radial_step(x: Tensor, neighbours: int, step_limit: float, generator: torch.Generator | None) -> RadialExpansion:
    """One elementary map for the points ``x [N, D]`` pushed so far: centre, bandwidth and clipped Newton β.

    The centre is a point of ``x`` drawn uniformly; the bandwidth α is its distance to its ``neighbours``-th
    nearest point of ``x`` (itself counted), so every map moves about that many points wherever they lie.
    """
    centre = x[int(torch.randint(x.shape[0], (1,), generator=generator))]
    alpha = (x - centre).norm(dim=1).kthvalue(neighbours).values
    # Duplicated points can leave a zero radius; the smallest positive one keeps the map well defined.
    alpha = alpha.clamp_min(torch.finfo(x.dtype).eps * (1 + float(centre.abs().max())))
    g, h = radial_derivatives(x, centre, alpha)
    return RadialExpansion(centre, alpha, newton_beta(g, h, step_limit))
