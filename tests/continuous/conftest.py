"""Shared pieces of the continuous-flow tests: a linear velocity field with a closed-form flow."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from ctflows.continuous import VelocityField


class LinearField(VelocityField):
    """v(t, x) = x Aᵀ (i.e. dx/dt = A x per sample): x(T) = expm(A T) x(0), log-det T tr(A)."""

    def __init__(self, a: Tensor, learnable: bool = False) -> None:
        super().__init__()
        self.features = a.shape[0]
        if learnable:
            self.a = nn.Parameter(a.clone())
        else:
            self.register_buffer("a", a.clone())

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        return x @ self.a.T


@pytest.fixture
def linear_field():
    return LinearField


@pytest.fixture
def matrix_a() -> Tensor:
    """A fixed, non-symmetric 3x3 matrix with moderate eigenvalues (float64)."""
    g = torch.Generator().manual_seed(7)
    return 0.5 * torch.randn(3, 3, generator=g, dtype=torch.float64)
