"""Composite Gauss–Legendre quadrature:  ∫_a^b f(t) dt ≈ Σ_j w_j f(t_j).

[a, b] is cut into panels with ``order`` Legendre nodes each (exact for polynomials of degree
2·order − 1 per panel; for smooth f the error falls geometrically once every panel is narrower than
f's length scale there). Reference: Davis & Rabinowitz, *Methods of Numerical Integration* (1984), ch. 2.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def gauss_legendre_panels(edges: np.ndarray, order: int = 8) -> tuple[Tensor, Tensor]:
    """Nodes and weights, float64 CPU ``[(len(edges) - 1) * order]``, for panels between increasing ``edges``.

    Nodes lie strictly inside the panels, so an integrand may be singular (e.g. log 0) at the edges.
    """
    x, w = np.polynomial.legendre.leggauss(order)  # on [-1, 1]
    edges = np.asarray(edges, dtype=np.float64)
    left, h = edges[:-1, None], np.diff(edges)[:, None]
    nodes = left + 0.5 * h * (x[None, :] + 1.0)
    weights = 0.5 * h * w[None, :]
    return torch.from_numpy(nodes.reshape(-1).copy()), torch.from_numpy(weights.reshape(-1).copy())


def gauss_legendre(a: float, b: float, panels: int, order: int = 8) -> tuple[Tensor, Tensor]:
    """Nodes and weights, float64 CPU ``[panels * order]``, for ``panels`` equal panels on [a, b]."""
    return gauss_legendre_panels(np.linspace(a, b, panels + 1), order)
