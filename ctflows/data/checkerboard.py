"""Checkerboard: the uniform density on the dark squares of a 4×4 board (FFJORD toy data, Grathwohl et al. 2019).

The board is [-4, 4)², cut into 2×2 squares; square (a, b) = [2a, 2a+2) × [2b, 2b+2), a, b ∈ {-2, ..., 1},
is dark when a + b is even. Eight dark squares of area 4 give

    p(x) = 1/32 on the dark squares,  0 elsewhere  (log p = -inf off the support, which is correct).

Squares are half-open, so each point of the plane belongs to exactly one square.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.data.density import ToyDensity, rand, randint


class Checkerboard(ToyDensity):
    """Uniform on the 8 dark 2×2 squares of [-4, 4)²; log p = log(1/32) there and -inf elsewhere."""

    name = "checkerboard"
    description = "uniform on the 8 dark 2x2 squares of a checkerboard on [-4, 4]^2 [FFJORD]"
    half_width = 4.0
    square = 2.0

    def __init__(self) -> None:
        self.dim = 2

    def _sample64(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        # Pick a column, then one of its two dark squares: row parity must match column parity.
        col = randint(4, (n,), generator, device)
        row = 2 * randint(2, (n,), generator, device) + col % 2
        corner = torch.stack([col, row], dim=1).to(torch.float64) * self.square - self.half_width
        return corner + self.square * rand((n, 2), generator, device)

    def _cast(self, x64: Tensor, dtype: torch.dtype) -> Tensor:
        # corner + 2u with u near 1 can round up onto the next square's edge (light, or off the board) in
        # float32, about once in 10⁷ points; step those back by one unit in the last place.
        x = x64.to(dtype)
        crossed = torch.floor(x.double() / self.square) != torch.floor(x64 / self.square)
        return torch.where(crossed, torch.nextafter(x, torch.full_like(x, -math.inf)), x)

    def _log_prob64(self, x: Tensor) -> Tensor:
        cell = torch.floor(x / self.square)  # square indices a, b
        inside = (x >= -self.half_width).all(1) & (x < self.half_width).all(1)
        dark = torch.remainder(cell.sum(1), 2) == 0
        log_density = -math.log(8 * self.square**2)
        out = torch.full_like(x[:, 0], -math.inf)
        out = out.masked_fill(inside & dark, log_density)
        return out.masked_fill(torch.isnan(x).any(1), math.nan)  # NaN in, NaN out, as for the other densities
