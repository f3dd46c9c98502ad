"""Noisy curves: ``two_moons``, ``swiss_roll``, ``two_spirals`` (FFJORD toy data, Grathwohl et al. 2019).

One of A arms is chosen with equal probability, a curve parameter t ~ w(t) on [a, b], and isotropic noise
is added: x = c_arm(t) + σ ε. The density is a 1-D integral over the parameter,

    p(x) = (1/A) Σ_arm ∫_a^b w(t) N(x; c_arm(t), σ² I) dt,

computed with a fixed composite Gauss–Legendre rule (``quadrature.py``), in float64 and in log-space
(log-sum-exp over nodes), so far-away points get an accurate, finite log-density. The kernel's width in
t is σ / |c'(t)|, so panels are laid out uniformly in arc length, 2σ long, 8 nodes each; panels next to
the curve's ends are halved 8 times, because beyond an end the integrand decays like exp(-D |c'| δt / σ²)
for a point at distance D. Where log p > -30 this agrees with far finer rules to better than 1e-8
(the tests check 1e-7 against an independent, extrapolated midpoint rule); 744 nodes per arm at most.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ctflows.data.density import ToyDensity, rand, randint, randn
from ctflows.data.quadrature import gauss_legendre_panels

# Rows of x per block, so that a [block, nodes] kernel matrix stays around 32 MB.
_BLOCK_ELEMENTS = 4_000_000


class NoisyCurves(ToyDensity):
    """Equal mixture over arms of a curve with parameter density w(t) on ``t_range``, plus N(0, σ²I) noise.

    Subclasses give ``arms(t) -> [A, m, 2]`` (every arm at the parameters ``t [m]``), ``std``, ``t_range``
    and, when w is not uniform, ``t_from_uniform`` (inverse CDF) and ``t_log_density``.
    """

    std: float = 1.0
    t_range: tuple[float, float] = (0.0, 1.0)
    panel_length: float = 2.0  # in units of σ, measured along the curve
    order: int = 8
    end_halvings: int = 8

    def __init__(self) -> None:
        self.dim = 2
        self._nodes, self._weights = gauss_legendre_panels(self._panel_edges(), self.order)

    def _panel_edges(self) -> np.ndarray:
        """Panel edges in t, evenly spaced in arc length (of the fastest arm), geometrically refined at both ends."""
        a, b = self.t_range
        t = torch.linspace(a, b, 20001, dtype=torch.float64)
        steps = torch.linalg.vector_norm(torch.diff(self.arms(t), dim=1), dim=-1).amax(0)
        arc = np.concatenate([[0.0], torch.cumsum(steps, 0).numpy()])
        total = arc[-1]
        panels = max(1, int(np.ceil(total / (self.panel_length * self.std))))
        first = total / panels
        refine = first * 0.5 ** np.arange(1, self.end_halvings + 1)
        s_edges = np.unique(np.concatenate([np.linspace(0.0, total, panels + 1), refine, total - refine]))
        edges = np.interp(s_edges, arc, t.numpy())
        edges[0], edges[-1] = a, b
        return edges

    def arms(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def t_from_uniform(self, u: Tensor) -> Tensor:
        """Inverse CDF of w: uniform u in [0, 1) -> t. Default: w uniform on ``t_range``."""
        a, b = self.t_range
        return a + (b - a) * u

    def t_log_density(self, t: Tensor) -> Tensor:
        """log w(t). Default: w uniform on ``t_range``."""
        a, b = self.t_range
        return torch.full_like(t, -math.log(b - a))

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        t = self.t_from_uniform(rand((n,), generator, device))
        on_curve = self.arms(t)  # [A, n, 2]
        arm = randint(on_curve.shape[0], (n,), generator, device)
        picked = on_curve[arm, torch.arange(n, device=device)]
        return picked + self.std * randn((n, 2), generator, device)

    def _log_prob64(self, x: Tensor) -> Tensor:
        t, w = self._nodes.to(x.device), self._weights.to(x.device)
        centres = self.arms(t)  # [A, m, 2]
        n_arms = centres.shape[0]
        centres = centres.reshape(-1, 2)  # [A·m, 2]
        log_w = (torch.log(w) + self.t_log_density(t)).repeat(n_arms) - math.log(n_arms)
        s2 = self.std**2
        # |x - c|² = |x|² - 2 x·c + |c|²: a matmul instead of an [n, m, 2] difference tensor.
        node_term = log_w - 0.5 * (centres**2).sum(1) / s2  # [A·m]
        block = max(1, _BLOCK_ELEMENTS // centres.shape[0])
        out = []
        for xb in x.split(block):
            cross = (xb @ centres.T) / s2  # [b, A·m]
            out.append(torch.logsumexp(cross + node_term, dim=1) - 0.5 * (xb**2).sum(1) / s2)
        return torch.cat(out) - math.log(2 * math.pi * s2) if out else x.new_empty(0)


class TwoMoons(NoisyCurves):
    """Two interleaved half circles of radius 2, θ uniform on [0, π], noise std 0.2.

    Arms (2 cos θ − 1, 2 sin θ − 0.2) and (1 − 2 cos θ, 0.8 − 2 sin θ): scikit-learn's ``make_moons``
    (noise 0.1) scaled by 2 and shifted by (−1, −0.2), as in FFJORD. Uniform in θ = uniform in arc length.
    """

    name = "two_moons"
    description = "two interleaved half circles of radius 2, noise std 0.2 [FFJORD]"
    std = 0.2
    t_range = (0.0, math.pi)

    def arms(self, t: Tensor) -> Tensor:
        c, s = torch.cos(t), torch.sin(t)
        return torch.stack([torch.stack([2 * c - 1, 2 * s - 0.2], -1), torch.stack([1 - 2 * c, 0.8 - 2 * s], -1)])


class SwissRoll(NoisyCurves):
    """Swiss roll: (t cos t, t sin t) / 5, t uniform on [1.5π, 4.5π] (uniform in parameter), noise std 0.2.

    scikit-learn's ``make_swiss_roll`` (noise 1) projected on its (x, z) plane and divided by 5, as in FFJORD.
    """

    name = "swiss_roll"
    description = "2-D swiss roll (t cos t, t sin t)/5, t in [1.5pi, 4.5pi], noise std 0.2 [FFJORD]"
    std = 0.2
    t_range = (1.5 * math.pi, 4.5 * math.pi)

    def arms(self, t: Tensor) -> Tensor:
        return torch.stack([t * torch.cos(t), t * torch.sin(t)], -1).unsqueeze(0) / 5


class TwoSpirals(NoisyCurves):
    """Two opposite spirals ±(−t cos t, t sin t) / 3, t = 3π √u (density w(t) = 2t / (3π)²), noise std 0.1.

    FFJORD's ``2spirals`` without its extra uniform [0, 1/6)² jitter (which would make the density a 3-D
    integral). Arc length grows like t²/2, so t = 3π √u is close to uniform in arc length.
    """

    name = "two_spirals"
    description = "two opposite spirals of 1.5 turns, outer radius pi, noise std 0.1 [FFJORD]"
    std = 0.1
    t_range = (0.0, 3 * math.pi)

    def t_from_uniform(self, u: Tensor) -> Tensor:
        return 3 * math.pi * torch.sqrt(u)

    def t_log_density(self, t: Tensor) -> Tensor:
        return torch.log(2 * t) - 2 * math.log(3 * math.pi)

    def arms(self, t: Tensor) -> Tensor:
        arm = torch.stack([-t * torch.cos(t), t * torch.sin(t)], -1) / 3
        return torch.stack([arm, -arm])
