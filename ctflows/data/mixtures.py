"""Gaussian mixtures: closed-form densities  p(x) = Σ_k π_k N(x; μ_k, Σ_k).

``eight_gaussians`` is FFJORD's 2-D toy set (Grathwohl et al. 2019); ``gaussian_mixture`` is a fixed,
seeded mixture with full covariances in any dimension.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.core.counts import positive_count, whole_setting
from ctflows.data.density import ToyDensity, check_dim, randint, randn, rand


def mixture_log_prob(x: Tensor, log_weights: Tensor, means: Tensor, chol: Tensor) -> Tensor:
    """log Σ_k π_k N(x; μ_k, L_k L_kᵀ) for x [n, d], log π [K], μ [K, d], lower Cholesky factors L [K, d, d]."""
    d = x.shape[1]
    diff = (x.unsqueeze(0) - means.unsqueeze(1)).transpose(1, 2)  # [K, d, n]
    white = torch.linalg.solve_triangular(chol, diff, upper=False)  # L⁻¹(x - μ): [K, d, n]
    log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # log|L_k| = ½ log|Σ_k|: [K]
    log_n = -0.5 * (white**2).sum(1) - log_det.unsqueeze(1) - 0.5 * d * math.log(2 * math.pi)  # [K, n]
    return torch.logsumexp(log_n + log_weights.unsqueeze(1), dim=0)


class EightGaussians(ToyDensity):
    """Equal mixture of 8 isotropic Gaussians on a circle (FFJORD toy data, Grathwohl et al. 2019).

    Centres 2√2 (cos kπ/4, sin kπ/4), k = 0..7, standard deviation 1/(2√2) ≈ 0.354 — FFJORD's
    radius-4, std-0.5 set divided by √2 (FFJORD divides by 1.414). Closed form.
    """

    name = "eight_gaussians"
    description = "8 equal isotropic Gaussians (std 0.354) on a circle of radius 2.83 [FFJORD]"
    radius = 2.0 * math.sqrt(2.0)
    std = 0.5 / math.sqrt(2.0)

    def __init__(self) -> None:
        self.dim = 2

    def centres(self, device: torch.device | str | None = None) -> Tensor:
        """The 8 centres, float64 ``[8, 2]``."""
        angle = torch.arange(8, dtype=torch.float64, device=device) * (math.pi / 4)
        return self.radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        which = randint(8, (n,), generator, device)
        return self.centres(device)[which] + self.std * randn((n, 2), generator, device)

    def _log_prob64(self, x: Tensor) -> Tensor:
        sq = ((x.unsqueeze(1) - self.centres(x.device)) ** 2).sum(-1)  # [n, 8]
        log_n = -0.5 * sq / self.std**2 - math.log(2 * math.pi * self.std**2)
        return torch.logsumexp(log_n, dim=1) - math.log(8.0)


class GaussianMixture(ToyDensity):
    """A fixed mixture of ``n_components`` full-covariance Gaussians in R^dim, determined by ``seed``.

    From a torch generator seeded with ``seed`` (CPU, float64): means uniform in [-4, 4]^dim; covariances
    Σ_k = Q_k diag(λ_k) Q_kᵀ with Q_k a random rotation (QR of a Gaussian matrix) and standard deviations
    √λ uniform in [0.3, 1]; weights π ∝ exp(0.5 ε), ε ~ N(0, 1). Closed form via Cholesky factors.
    """

    name = "gaussian_mixture"
    description = "fixed seeded mixture of full-covariance Gaussians, any dim (default 16, 8 components)"

    def __init__(self, dim: int = 16, n_components: int = 8, seed: int = 0) -> None:
        self.dim = dim = check_dim(self.name, dim)
        # Whole numbers as check_dim takes them (NumPy and 0-d torch integers too, never a bool).
        k = positive_count(self.name, "n_components", n_components)
        # torch's range: beyond it manual_seed raised a ValueError
        seed = whole_setting(self.name, "seed", seed, "an int from -2^63 to 2^64 - 1", lambda v: -(2**63) <= v < 2**64)
        g = torch.Generator().manual_seed(seed)
        cpu = torch.device("cpu")
        self.means = 8.0 * rand((k, dim), g, cpu) - 4.0
        q, r = torch.linalg.qr(randn((k, dim, dim), g, cpu))
        # Fixing the signs of R's diagonal makes Q a deterministic (Haar-distributed) rotation.
        q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
        stds = 0.3 + 0.7 * rand((k, dim), g, cpu)
        cov = q @ torch.diag_embed(stds**2) @ q.transpose(-1, -2)
        self.covariances = 0.5 * (cov + cov.transpose(-1, -2))
        self.weights = torch.softmax(0.5 * randn((k,), g, cpu), dim=0)
        self._chol = torch.linalg.cholesky(self.covariances)

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        # Inverse CDF of the weights; the clamp guards against the last cumulative sum rounding below 1.
        cdf = torch.cumsum(self.weights.to(device), 0)
        which = torch.searchsorted(cdf, rand((n,), generator, device)).clamp_(max=len(cdf) - 1)
        eps = randn((n, self.dim, 1), generator, device)
        return self.means.to(device)[which] + (self._chol.to(device)[which] @ eps).squeeze(-1)

    def _log_prob64(self, x: Tensor) -> Tensor:
        dev = x.device
        return mixture_log_prob(x, torch.log(self.weights.to(dev)), self.means.to(dev), self._chol.to(dev))
