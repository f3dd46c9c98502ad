"""One finite-difference check of a layer's parameter gradients, shared by the vector and image property suites."""
from __future__ import annotations

import pytest
import torch

from ctflows.core import Transform


def assert_parameter_gradients_match_finite_differences(
    layer: Transform, x: torch.Tensor, context: torch.Tensor | None, *, abs_tol: float, name: str
) -> None:
    """Autograd's derivative of ``Σ r·z + Σ s·log|det|`` (fixed random r, s) along one random direction through all
    parameters equals the central difference (float64; call in eval() so the map is deterministic).

    Non-zero gradients are not enough: a log-det computed from a detached intermediate keeps its value and
    loses (or bends) its gradient.
    """
    params = [p for p in layer.parameters() if p.requires_grad]
    if not params:
        return
    generator = torch.Generator().manual_seed(2)
    z, _ = layer(x, context)
    weights = torch.randn(z.shape, generator=generator, dtype=x.dtype)
    logdet_weights = torch.randn(x.shape[0], generator=generator, dtype=x.dtype)
    direction = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]

    def loss() -> torch.Tensor:
        z, logdet = layer(x, context)
        return (z * weights).sum() + (logdet * logdet_weights).sum()

    grads = torch.autograd.grad(loss(), params)
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction))
    step, values = 1e-5, []
    with torch.no_grad():
        for sign in (1.0, -1.0):
            for p, d in zip(params, direction):
                p.add_(sign * step * d)
            values.append(float(loss()))
            for p, d in zip(params, direction):
                p.sub_(sign * step * d)
    numeric = (values[0] - values[1]) / (2 * step)
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=abs_tol), name
