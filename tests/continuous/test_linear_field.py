"""A linear field dx/dt = A x has x(T) = expm(A T) x and log-det T tr(A): the CNF must match both."""
from __future__ import annotations

import math

import pytest
import torch

from ctflows.continuous import CNF

T = 0.7


def make(linear_field, a, learnable: bool = False, **kwargs) -> CNF:
    kwargs.setdefault("atol", 1e-10)
    kwargs.setdefault("rtol", 1e-10)
    return CNF(linear_field(a, learnable), end_time=T, **kwargs).double()


@pytest.mark.parametrize("adjoint", [True, False])
def test_exact_matches_closed_form_both_directions(linear_field, matrix_a, adjoint):
    cnf = make(linear_field, matrix_a, divergence="exact", adjoint=adjoint)
    x = torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z, logdet = cnf(x)
    expected_z = x @ torch.linalg.matrix_exp(matrix_a * T).T
    torch.testing.assert_close(z, expected_z, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(logdet, torch.full_like(logdet, T * float(torch.trace(matrix_a))), atol=1e-9, rtol=0)
    assert cnf.stats["logdet_exact"] is True

    x_back, logdet_inv = cnf.inverse(expected_z)
    torch.testing.assert_close(x_back, x, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-9, rtol=0)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(linear_field, matrix_a, noise):
    # Each batch row draws its own probe, so one solve over n copies of a point gives n independent estimates.
    torch.manual_seed(1)
    n = 4000
    cnf = make(linear_field, matrix_a, divergence="hutchinson", noise=noise, atol=1e-8, rtol=1e-8)
    x = torch.randn(1, 3, dtype=torch.float64).expand(n, 3).contiguous()
    z, logdet = cnf(x)
    assert cnf.stats["logdet_exact"] is False
    torch.testing.assert_close(z, x @ torch.linalg.matrix_exp(matrix_a * T).T, atol=1e-6, rtol=1e-6)
    mean, se = logdet.mean(), logdet.std() / math.sqrt(n)
    assert se > 1e-3, "the estimator should be random, not exact"
    assert abs(float(mean) - T * float(torch.trace(matrix_a))) < 4 * float(se)


def test_hutchinson_noise_is_fixed_along_the_trajectory(linear_field, matrix_a):
    # With the probe held fixed, the log-det of a linear field is exactly T εᵀAε for that ε: a quadratic form,
    # so for Rademacher noise it takes at most 2^(D-1) distinct values.
    torch.manual_seed(2)
    cnf = make(linear_field, matrix_a, divergence="hutchinson", noise="rademacher")
    logdet = cnf(torch.randn(200, 3, dtype=torch.float64))[1]
    signs = torch.tensor([[1, s1, s2] for s1 in (-1, 1) for s2 in (-1, 1)], dtype=torch.float64)
    allowed = T * torch.einsum("ki,ij,kj->k", signs, matrix_a, signs)
    distance = (logdet.unsqueeze(1) - allowed.unsqueeze(0)).abs().min(dim=1).values
    assert float(distance.max()) < 1e-8


def test_eval_mode_uses_exact_divergence(linear_field, matrix_a):
    cnf = make(linear_field, matrix_a, divergence="hutchinson", eval_divergence="exact")
    cnf.eval()
    with torch.no_grad():
        _, logdet = cnf(torch.randn(5, 3, dtype=torch.float64))
    assert cnf.stats["logdet_exact"] is True and cnf.stats["divergence"] == "exact"
    torch.testing.assert_close(logdet, torch.full_like(logdet, T * float(torch.trace(matrix_a))), atol=1e-9, rtol=0)


@pytest.mark.parametrize("inverse", [False, True])
def test_adjoint_gradients_match_the_closed_form(linear_field, matrix_a, inverse):
    """dL/dA, dL/dT, dL/dx of L = Σ w·z + Σ s·log-det (adjoint=True) equal autograd through expm(±A T) x and ±T tr(A)."""
    cnf = make(linear_field, matrix_a, learnable=True, learn_end_time=True, adjoint=True, warm_start_step=False)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, dtype=torch.float64, generator=g).requires_grad_(True)
    w, s = torch.randn(6, 3, dtype=torch.float64, generator=g), torch.randn(6, dtype=torch.float64, generator=g)
    inputs = [cnf.field.a, cnf.raw_end_time, x]
    z, logdet = (cnf.inverse if inverse else cnf)(x)
    got = torch.autograd.grad((w * z).sum() + (s * logdet).sum(), inputs)
    signed_time = -cnf.end_time if inverse else cnf.end_time
    z = x @ torch.linalg.matrix_exp(cnf.field.a * signed_time).T
    logdet = signed_time * torch.trace(cnf.field.a)
    expected = torch.autograd.grad((w * z).sum() + (s * logdet).sum(), inputs)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
