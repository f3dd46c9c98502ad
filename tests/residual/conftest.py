"""Shared pieces of the residual-flow tests: a branch whose Lipschitz constant sits near its bound."""
from __future__ import annotations

import pytest
import torch

from ctflows.residual import LipschitzMLP


def align(g: LipschitzMLP, seed: int = 0) -> LipschitzMLP:
    """Set a one-hidden-layer branch D -> H -> D so that ‖J_g‖₂ is close to its bound c², with real eigenvalues.

    Random weights give ‖J_g‖₂ far below c^L (the layers' top singular vectors do not line up: measured
    0.01–0.09 for a (32, 32) branch at c = 0.99), so series and fixed-point iterations would converge too fast
    to test anything. Here W̃₁ = c·Q·Λ (Q: H × D, orthonormal columns, Λ = diag(1, 0.95, 0.9, ...): distinct
    singular values, where σ is differentiable), W̃₂ = c·S·Qᵀ (S symmetric positive definite, ‖S‖₂ = 1) and
    b₁ = 2, where LipSwish's slope is near 1: J = c² S (Qᵀ Φ' Q) Λ has real eigenvalues (it is similar to a
    product of symmetric positive definite matrices). Returns ``g`` in eval mode.
    """
    first, last = g.mlp.net[0], g.mlp.net[-1]
    hidden, d = first.weight.shape
    assert len(g.mlp.net) == 3, "align expects one hidden layer"
    torch.manual_seed(seed)  # the power-iteration vectors' start
    gen = torch.Generator().manual_seed(seed)
    dtype = first.weight.dtype
    q, _ = torch.linalg.qr(torch.randn(hidden, d, generator=gen, dtype=dtype))
    a = torch.randn(d, d, generator=gen, dtype=dtype)
    s = a @ a.T + 0.5 * torch.eye(d, dtype=dtype)
    s = s / torch.linalg.matrix_norm(s, ord=2)
    spread = 1.0 - 0.05 * torch.arange(d, dtype=dtype)
    with torch.no_grad():
        first.weight.copy_(2 * q * spread)  # raw norm 2 > c: scaled to exactly c
        first.bias.fill_(2.0)
        last.weight.copy_(2 * s @ q.T)
        last.bias.zero_()
    return g.eval()


@pytest.fixture
def aligned():
    return align
