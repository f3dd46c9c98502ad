"""Learnable invertible linear layer in LU form (Kingma & Dhariwal 2018; Oliva et al. 2018).

    z = W x + b,   W = P L U,   log|det J| = Σ_i log|U_ii|

P is a fixed permutation, L unit lower triangular, U upper triangular with U_ii = sign_i · exp(u_i), so
W stays invertible whatever the parameters and the inverse is two triangular solves.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ctflows.core.counts import positive_count
from ctflows.core.transform import Transform
from ctflows.core.validation import check_generator


class LULinear(Transform):
    """Invertible ``[B, D] -> [B, D]`` linear map, initialised to a random rotation (or the identity)."""

    def __init__(self, features: int, *, identity_init: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        features = positive_count("LULinear", "features", features)
        check_generator("LULinear", generator, torch.device("cpu"))  # the start is drawn on the CPU
        self.event_shape = (features,)
        if identity_init:
            w = torch.eye(features)
        else:
            # A random orthogonal start mixes all features from the first step yet keeps log|det| = 0.
            w, _ = torch.linalg.qr(torch.randn(features, features, generator=generator))
        p, lower, upper = torch.linalg.lu(w)
        diag = torch.diagonal(upper)
        self.register_buffer("permutation", p)
        self.register_buffer("sign", torch.sign(diag))
        self.lower = nn.Parameter(torch.tril(lower, -1))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_diag = nn.Parameter(torch.log(diag.abs()))
        self.bias = nn.Parameter(torch.zeros(features))

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * torch.exp(self.log_diag))
        return lower, upper

    def weight(self) -> Tensor:
        """The matrix ``W = P L U`` ``[D, D]``."""
        lower, upper = self._factors()
        return self.permutation @ lower @ upper

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        z = x @ self.weight().T + self.bias
        return z, self.log_diag.sum().expand(x.shape[0])

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        lower, upper = self._factors()
        # Solve P L U x = z - b for all rows at once: x = U⁻¹ L⁻¹ Pᵀ (z - b).
        rhs = (z - self.bias) @ self.permutation  # rows of Pᵀ(z - b)
        y = torch.linalg.solve_triangular(lower, rhs.T, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper, y, upper=True).T
        return x, (-self.log_diag.sum()).expand(z.shape[0])
