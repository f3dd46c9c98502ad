"""Neal's funnel (Neal 2003, "Slice sampling", Ann. Statist. 31(3)), in any dimension ``dim`` >= 2.

x = (v, x_1, ..., x_{dim-1}),  v ~ N(0, 3²),  x_i | v ~ N(0, e^v) independently:

    log p(x) = log N(v; 0, 9) + Σ_i [ -½ x_i² e^{-v} - ½ v - ½ log 2π ].
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.data.density import ToyDensity, check_dim, randn


class Funnel(ToyDensity):
    """Neal's funnel: the first coordinate v ~ N(0, 9) sets the variance e^v of the other dim - 1."""

    name = "funnel"
    description = "Neal's funnel: v ~ N(0, 9), x_i | v ~ N(0, e^v); any dim >= 2 (default 10)"
    v_std = 3.0

    def __init__(self, dim: int = 10) -> None:
        self.dim = check_dim(self.name, dim, minimum=2)

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        eps = randn((n, self.dim), generator, device)
        v = self.v_std * eps[:, :1]
        return torch.cat([v, torch.exp(0.5 * v) * eps[:, 1:]], dim=1)

    def _log_prob64(self, x: Tensor) -> Tensor:
        v, rest = x[:, 0], x[:, 1:]
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        log_v = -0.5 * (v / self.v_std) ** 2 - math.log(self.v_std) - half_log_2pi
        # e^{-v} Σ x_i² as e^{2 log m - v} Σ (x_i / m)², m = max |x_i|: far out in the funnel's neck or mouth the
        # square or e^{-v} overflows on its own where the product does not. 0 · e^{-v} is 0, an infinite x_i -inf.
        peak = rest.abs().amax(1)
        unit = torch.where(torch.isfinite(peak) & (peak > 0), peak, torch.ones_like(peak))
        ratio = ((rest / unit[:, None]) ** 2).sum(1)
        scaled = torch.where(ratio == 0, torch.zeros_like(ratio), torch.exp(2 * torch.log(unit) - v) * ratio)
        scaled = torch.where(torch.isinf(ratio), ratio, scaled)
        log_rest = -0.5 * scaled - (self.dim - 1) * (0.5 * v + half_log_2pi)
        return log_v + log_rest
