"""Many-well density (Midgley et al. 2023, "Flow annealed importance sampling bootstrap", ICLR; the
double well of Noé et al. 2019, "Boltzmann generators", Science 365): a product of dim/2 copies of

    p(a, b) = exp(-a⁴ + 6a² + ½a) N(b; 0, 1) / Z₁,    Z₁ = ∫ exp(-t⁴ + 6t² + ½t) dt,

on coordinate pairs (x_0, x_1), (x_2, x_3), ...: 2^{dim/2} modes. Z₁ comes from 512-node Gauss–Legendre
quadrature on [-6, 6] (the integrand is below e^{-1000} of its peak outside; agrees with adaptive
quadrature to ~1e-15). The double-well coordinate is sampled exactly by rejection from a two-Gaussian
proposal centred on the wells.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.data.density import ToyDensity, check_dim, rand, randn
from ctflows.data.quadrature import gauss_legendre

_WELLS = (1.7525198601, -1.7108290353)  # roots of d/dt (-t⁴ + 6t² + ½t) = 0 at the two minima of the energy
_PROPOSAL_STD = 0.4  # wide enough to cover the barrier at t ≈ 0; keeps the acceptance rate near 1/2


def double_well_log_f(t: Tensor) -> Tensor:
    """Unnormalised log-density of the double-well coordinate: -t⁴ + 6t² + ½t."""
    square = t**2
    return -square * (square - 6) + 0.5 * t  # factored: -t⁴ + 6t² is inf - inf once t² overflows


class ManyWell(ToyDensity):
    """Product of dim/2 independent 2-D double-well densities; exact log_prob and exact samples."""

    name = "many_well"
    description = "product of dim/2 double wells exp(-a^4+6a^2+a/2) N(b;0,1): 2^(dim/2) modes; even dim (default 8)"

    def __init__(self, dim: int = 8) -> None:
        self.dim = check_dim(self.name, dim, minimum=2, even=True)
        t, w = gauss_legendre(-6.0, 6.0, 64, 8)
        log_f = double_well_log_f(t)
        self.log_z1 = float(torch.logsumexp(log_f + torch.log(w), 0))
        # Proposal weights = the mass on each side of the barrier (t > 0 holds the right well).
        right = float(torch.exp(torch.logsumexp((log_f + torch.log(w))[t > 0], 0) - self.log_z1))
        self._proposal_weights = (right, 1.0 - right)
        # Envelope constant M ≥ max p/q, from a fine grid plus a 1 % margin; p/q is smooth and falls
        # like exp(-t⁴) outside [-6, 6], so the grid maximum cannot be beaten by more than that margin.
        grid = torch.linspace(-6.0, 6.0, 120001, dtype=torch.float64)
        self._log_envelope = float((self._log_p1(grid) - self._log_proposal(grid)).max()) + math.log(1.01)

    def _log_p1(self, t: Tensor) -> Tensor:
        return double_well_log_f(t) - self.log_z1

    def _log_proposal(self, t: Tensor) -> Tensor:
        parts = [
            math.log(w) - 0.5 * ((t - m) / _PROPOSAL_STD) ** 2 - math.log(_PROPOSAL_STD * math.sqrt(2 * math.pi))
            for m, w in zip(_WELLS, self._proposal_weights)
        ]
        return torch.logaddexp(parts[0], parts[1])

    def _sample_wells(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """n exact draws of the double-well coordinate, by rejection: accept t ~ q with probability p / (M q)."""
        kept = [torch.empty(0, dtype=torch.float64, device=device)]
        have = 0
        wells = torch.tensor(_WELLS, dtype=torch.float64, device=device)
        while have < n:
            m = int(1.2 * (n - have) * math.exp(self._log_envelope)) + 16
            side = (rand((m,), generator, device) >= self._proposal_weights[0]).long()
            t = wells[side] + _PROPOSAL_STD * randn((m,), generator, device)
            log_u = torch.log(rand((m,), generator, device))
            t = t[log_u < self._log_p1(t) - self._log_proposal(t) - self._log_envelope]
            kept.append(t)
            have += t.numel()
        return torch.cat(kept)[:n]

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        pairs = self.dim // 2
        wells = self._sample_wells(n * pairs, generator, device).reshape(n, pairs)
        gauss = randn((n, pairs), generator, device)
        return torch.stack([wells, gauss], dim=2).reshape(n, self.dim)

    def _log_prob64(self, x: Tensor) -> Tensor:
        a, b = x[:, 0::2], x[:, 1::2]
        log_pair = self._log_p1(a) - 0.5 * b**2 - 0.5 * math.log(2 * math.pi)
        return log_pair.sum(1)
