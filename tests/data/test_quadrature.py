"""Composite Gauss–Legendre rules integrate what they should."""
from __future__ import annotations

import math

import numpy as np
import torch

from ctflows.data.quadrature import gauss_legendre, gauss_legendre_panels


def test_exact_for_polynomials_of_degree_2n_minus_1() -> None:
    t, w = gauss_legendre(-1.0, 2.0, panels=3, order=4)
    assert t.dtype == torch.float64 and t.shape == w.shape == (12,)
    assert abs((w * t**7).sum().item() - (2.0**8 - 1.0) / 8) < 1e-12


def test_uneven_panels_and_smooth_integrand() -> None:
    edges = np.array([0.0, 0.1, 0.5, 1.7, math.pi])
    t, w = gauss_legendre_panels(edges, order=10)
    assert ((t > 0) & (t < math.pi)).all()
    assert abs((w * torch.sin(t)).sum().item() - 2.0) < 1e-12
