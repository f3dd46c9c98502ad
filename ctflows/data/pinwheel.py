"""Pinwheel: five Gaussian blobs swirled by a radius-dependent rotation (FFJORD toy data, Grathwohl et al. 2019;
after Johnson et al. 2016, "Composing graphical models with neural networks").

Blob k ∈ {0..4} (equal weights): f ~ N((1, 0), diag(0.3², 0.1²)); the blob is rotated clockwise by
a_k(|f|) = 2πk/5 + 0.25 e^{|f|} and scaled by 2:

    x = 2 R(-a_k(|f|)) f,     p(x) = ¼ · (1/5) Σ_k N(R(a_k(|x|/2)) x/2; (1, 0), diag(0.3², 0.1²)).

A rotation whose angle depends only on the radius maps each circle onto itself rigidly, so the map is a
bijection of the plane with Jacobian determinant 1 (polar coordinates: (ρ, ψ) -> (ρ, ψ - a(ρ))).
FFJORD's angle uses the first coordinate f₁ instead of |f|; that map folds over itself on circles
|f| > 1.70 (1 % of the mass lies beyond), so it has no single-valued inverse. Where the mass is, |f| - f₁ ≈ f₂²/2
≈ 0.005, so the two sets look the same.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.data.density import ToyDensity, randint, randn


def _rotate(v: Tensor, angle: Tensor) -> Tensor:
    """Rotate rows of v [n, 2] counter-clockwise by angle [n]."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], dim=1)


class Pinwheel(ToyDensity):
    """Five swirled Gaussian blobs; exact density by the volume-preserving inverse rotation."""

    name = "pinwheel"
    description = "5 Gaussian blobs swirled by a radius-dependent rotation [FFJORD]"
    n_blobs = 5
    radial_std = 0.3
    tangential_std = 0.1
    rate = 0.25
    scale = 2.0

    def __init__(self) -> None:
        self.dim = 2

    def _angle(self, k: Tensor, radius: Tensor) -> Tensor:
        # Beyond radius ~36 float64 cannot resolve the angle modulo 2π anyway (the density there is below
        # e^-6000); the clamp only keeps exp finite, so cos/sin of an infinite angle give no NaN.
        return 2 * math.pi * k / self.n_blobs + self.rate * torch.exp(radius.clamp(max=700.0))

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        k = randint(self.n_blobs, (n,), generator, device).to(torch.float64)
        stds = torch.tensor([self.radial_std, self.tangential_std], dtype=torch.float64, device=device)
        f = randn((n, 2), generator, device) * stds
        f[:, 0] += 1.0
        return self.scale * _rotate(f, -self._angle(k, torch.linalg.vector_norm(f, dim=1)))

    def _log_prob64(self, x: Tensor) -> Tensor:
        y = x / self.scale
        radius = torch.linalg.vector_norm(y, dim=1)
        k = torch.arange(self.n_blobs, dtype=torch.float64, device=x.device)
        angles = self._angle(k.unsqueeze(0), radius.unsqueeze(1))  # [n, 5]
        y_rep = y.unsqueeze(1).expand(-1, self.n_blobs, -1).reshape(-1, 2)
        f = _rotate(y_rep, angles.reshape(-1)).reshape(-1, self.n_blobs, 2)
        u0 = (f[..., 0] - 1.0) / self.radial_std
        u1 = f[..., 1] / self.tangential_std
        log_blob = -0.5 * (u0**2 + u1**2) - math.log(2 * math.pi * self.radial_std * self.tangential_std)
        return torch.logsumexp(log_blob, dim=1) - math.log(self.n_blobs) - 2 * math.log(self.scale)
