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


class LinearJvpField(LinearField):
    """:class:`LinearField` with forward-mode Jacobian products, so a CNF takes its ``field_jvp`` path."""

    def forward_with_jvp(
        self, t: Tensor, x: Tensor, context: Tensor | None = None, tangents: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``v`` and ``(∂v/∂x) u_k = A u_k`` per tangent ``[B, K, D]`` (the D basis vectors when ``tangents`` is None)."""
        if tangents is None:
            tangents = torch.eye(self.features, dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
        return self(t, x, context), tangents @ self.a.T


@pytest.fixture
def linear_field():
    return LinearField


@pytest.fixture
def linear_jvp_field():
    return LinearJvpField


@pytest.fixture
def matrix_a() -> Tensor:
    """A fixed, non-symmetric 3x3 matrix with moderate eigenvalues (float64)."""
    g = torch.Generator().manual_seed(7)
    return 0.5 * torch.randn(3, 3, generator=g, dtype=torch.float64)
