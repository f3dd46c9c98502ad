"""The twisted Gaussian or "banana" (Haario, Saksman & Tamminen 1999, "Adaptive proposal distribution for
random walk Metropolis algorithm", Comput. Statist. 14), in any dimension ``dim`` >= 2.

z ~ N(0, diag(s², 1, ..., 1)), then the second coordinate is bent: y = φ(z) with
y_2 = z_2 + b (z_1² − s²) and y_i = z_i otherwise. φ is a shear (Jacobian determinant 1), so

    log p(y) = log N(φ⁻¹(y); 0, diag(s², 1, ..., 1)),   φ⁻¹: z_2 = y_2 − b (y_1² − s²).

Defaults s = 10, b = 0.03 (Haario et al.'s moderately twisted case; b = 0.1 is their strongly twisted one).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.core.counts import real_setting
from ctflows.data.density import ToyDensity, check_dim, randn


class TwistedGaussian(ToyDensity):
    """Banana-shaped density: a Gaussian with its second coordinate shifted by b (z_1² − s²)."""

    name = "twisted_gaussian"
    description = "twisted Gaussian (banana) of Haario et al.: std 10 along x1, twist 0.03; any dim >= 2 (default 8)"

    def __init__(self, dim: int = 8, twist: float = 0.03, scale: float = 10.0) -> None:
        self.dim = check_dim(self.name, dim, minimum=2)
        self.scale = real_setting(self.name, "scale", scale, "a positive number", lambda v: v > 0)
        self.twist = real_setting(self.name, "twist", twist, "a finite number")

    def _bend(self, first: Tensor) -> Tensor:
        return self.twist * (first**2 - self.scale**2)

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        z = randn((n, self.dim), generator, device)
        z[:, 0] *= self.scale
        z[:, 1] += self._bend(z[:, 0])
        return z

    def _log_prob64(self, x: Tensor) -> Tensor:
        z = x.clone()
        z[:, 1] -= self._bend(x[:, 0])
        z[:, 0] /= self.scale
        return -0.5 * (z**2).sum(1) - math.log(self.scale) - 0.5 * self.dim * math.log(2 * math.pi)
