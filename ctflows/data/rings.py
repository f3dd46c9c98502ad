"""Noisy concentric circles: ``rings`` and ``circles`` (FFJORD toy data, Grathwohl et al. 2019).

A radius r_k is chosen with equal probability, an angle θ uniformly on [0, 2π) (FFJORD spaces angles on
an even grid instead, which has no density), and isotropic 2-D noise N(0, σ²I) is added:
x = r_k (cos θ, sin θ) + σ ε. Averaging the Gaussian over θ gives a modified Bessel function I₀:

    p(x) = (1/K) Σ_k (2πσ²)⁻¹ exp(-(|x|² + r_k²) / 2σ²) I₀(|x| r_k / σ²)
         = (1/K) Σ_k (2πσ²)⁻¹ exp(-(|x| - r_k)² / 2σ²) i0e(|x| r_k / σ²)

where i0e(z) = e^{-z} I₀(z) is the exponentially scaled form, which neither overflows nor underflows.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.data.density import ToyDensity, randint, randn, rand


class NoisyCircles(ToyDensity):
    """Equal mixture of circles of radii ``radii``, uniform angle, isotropic Gaussian noise of std ``std``."""

    radii: tuple[float, ...] = ()
    std: float = 1.0

    def __init__(self) -> None:
        self.dim = 2

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        radii = torch.tensor(self.radii, dtype=torch.float64, device=device)
        r = radii[randint(len(self.radii), (n,), generator, device)]
        theta = 2 * math.pi * rand((n,), generator, device)
        circle = r.unsqueeze(1) * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
        return circle + self.std * randn((n, 2), generator, device)

    def _log_prob64(self, x: Tensor) -> Tensor:
        radii = torch.tensor(self.radii, dtype=torch.float64, device=x.device)
        rho = torch.linalg.vector_norm(x, dim=1, keepdim=True)  # [n, 1]
        s2 = self.std**2
        log_k = -0.5 * (rho - radii) ** 2 / s2 + torch.log(torch.special.i0e(rho * radii / s2))  # [n, K]
        return torch.logsumexp(log_k, dim=1) - math.log(2 * math.pi * s2) - math.log(len(self.radii))


class Rings(NoisyCircles):
    """Four rings, radii 0.75, 1.5, 2.25, 3, noise std 0.08 (FFJORD's ``rings``)."""

    name = "rings"
    description = "4 equal noisy rings, radii 0.75/1.5/2.25/3, noise std 0.08, uniform angle [FFJORD]"
    radii = (0.75, 1.5, 2.25, 3.0)
    std = 0.08


class Circles(NoisyCircles):
    """Two circles, radii 1.5 and 3, noise std 0.24 (FFJORD's ``circles``: scikit-learn's, factor 0.5, noise 0.08, times 3)."""

    name = "circles"
    description = "2 equal noisy circles, radii 1.5/3, noise std 0.24, uniform angle [FFJORD]"
    radii = (1.5, 3.0)
    std = 0.24
