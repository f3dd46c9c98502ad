"""Divergence estimators against the brute-force autograd Jacobian."""
from __future__ import annotations

import math

import pytest
import torch

from ctflows.continuous import (
    ConcatSquashMLP,
    exact_divergence,
    exact_divergence_forward_mode,
    hutchinson_divergence,
    hutchinson_divergence_forward_mode,
    resolve_divergence,
    sample_noise,
)
from ctflows.continuous.divergence import AUTO_EXACT_MAX_FEATURES, NOISE_KINDS
from ctflows.errors import ConfigurationError


def field_and_input(d: int = 4, batch: int = 6):
    torch.manual_seed(0)
    field = ConcatSquashMLP(d, (16, 16), activation="tanh", init_scale=1.0).double()
    x = torch.randn(batch, d, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.3, dtype=torch.float64)
    return field, t, x


def brute_force_jacobians(field, t, x):
    return torch.stack([torch.autograd.functional.jacobian(lambda r: field(t, r.unsqueeze(0))[0], row) for row in x.detach()])


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_exact_divergence_is_the_trace_of_the_jacobian(chunk_size):
    field, t, x = field_and_input()
    jac = brute_force_jacobians(field, t, x)
    div, rows = exact_divergence(field(t, x), x, chunk_size=chunk_size, return_jacobian=True)
    torch.testing.assert_close(div, jac.diagonal(dim1=-2, dim2=-1).sum(-1), atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(rows, jac, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_forward_mode_agrees_with_reverse_mode(chunk_size):
    field, t, x = field_and_input()
    jac = brute_force_jacobians(field, t, x)
    v, div, jt = exact_divergence_forward_mode(field, t, x, None, chunk_size=chunk_size)
    torch.testing.assert_close(v, field(t, x))
    torch.testing.assert_close(div, jac.diagonal(dim1=-2, dim2=-1).sum(-1), atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(jt, jac.transpose(1, 2), atol=1e-12, rtol=1e-10)
    noise = sample_noise(x, "gaussian", torch.Generator().manual_seed(0))
    _, est, jv = hutchinson_divergence_forward_mode(field, t, x, None, noise)
    reverse, _ = hutchinson_divergence(field(t, x), x, noise)
    torch.testing.assert_close(est, reverse, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(jv, torch.einsum("bij,bj->bi", jac, noise), atol=1e-12, rtol=1e-10)


def test_exact_divergence_is_differentiable_when_asked():
    field, t, x = field_and_input()
    div, _ = exact_divergence(field(t, x), x, create_graph=True)
    grads = torch.autograd.grad(div.sum(), list(field.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_hutchinson_with_basis_vectors_sums_to_the_trace():
    field, t, x = field_and_input()
    v = field(t, x)
    exact, _ = exact_divergence(v, x, create_graph=True)  # create_graph keeps v's graph for the probes below
    basis = torch.eye(x.shape[1], dtype=x.dtype)
    total = sum(hutchinson_divergence(v, x, e.expand_as(x), create_graph=True)[0] for e in basis)
    torch.testing.assert_close(total, exact, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_mean_over_many_probes_matches_exact(kind):
    field, t, x = field_and_input(d=5, batch=1)
    n = 20000
    xs = x.detach().expand(n, -1).clone().requires_grad_(True)
    v = field(t, xs)
    estimate, eps_jac = hutchinson_divergence(v, xs, sample_noise(xs, kind, torch.Generator().manual_seed(3)))
    exact, rows = exact_divergence(field(t, x), x, return_jacobian=True)
    se = estimate.std() / math.sqrt(n)
    assert abs(float(estimate.mean() - exact[0])) < 4 * float(se)
    # The vjp it returns is εᵀJ, so E‖εᵀJ‖² = ‖J‖_F² (the Frobenius regularizer's estimate).
    sq = eps_jac.pow(2).sum(-1)
    assert abs(float(sq.mean() - rows[0].pow(2).sum())) < 4 * float(sq.std() / math.sqrt(n))


def test_noise_has_identity_second_moment_and_right_values():
    like = torch.zeros(50000, 3, dtype=torch.float64)
    r = sample_noise(like, "rademacher", torch.Generator().manual_seed(0))
    assert set(r.unique().tolist()) == {-1.0, 1.0} and r.dtype == torch.float64
    g = sample_noise(like, "gaussian", torch.Generator().manual_seed(0))
    torch.testing.assert_close(g.T @ g / g.shape[0], torch.eye(3, dtype=torch.float64), atol=0.03, rtol=0)
    with pytest.raises(ConfigurationError):
        sample_noise(like, "uniform")


def test_auto_picks_exact_for_small_dimensions():
    assert resolve_divergence("auto", 2) == "exact"
    assert resolve_divergence("auto", 1000) == "hutchinson"
    assert resolve_divergence("hutchinson", 2) == "hutchinson"
    with pytest.raises(ConfigurationError):
        resolve_divergence("approximate", 2)


def test_auto_switches_to_hutchinson_just_above_the_documented_threshold():
    # "auto" is exact up to and including AUTO_EXACT_MAX_FEATURES features, the estimator from one more.

    assert resolve_divergence("auto", AUTO_EXACT_MAX_FEATURES) == "exact"
    assert resolve_divergence("auto", AUTO_EXACT_MAX_FEATURES + 1) == "hutchinson"
    assert resolve_divergence("auto", 1) == "exact"


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_a_field_that_ignores_x_has_zero_divergence_and_jacobian(chunk_size):
    # v = b(t), a pure translation: it has a graph (through b) but none through x, so autograd reports the
    # vjp as unused; the divergence, Jacobian and Hutchinson products must then be exactly zero.
    torch.manual_seed(0)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    v = (2.0 * b).expand(5, 3)
    div, jac = exact_divergence(v, x, chunk_size=chunk_size, return_jacobian=True)
    assert torch.equal(div, torch.zeros(5, dtype=torch.float64))
    assert torch.equal(jac, torch.zeros(5, 3, 3, dtype=torch.float64))
    noise = sample_noise(x, "gaussian", torch.Generator().manual_seed(1))
    est, eps_jac = hutchinson_divergence(v, x, noise)
    assert torch.equal(est, torch.zeros(5, dtype=torch.float64))
    assert torch.equal(eps_jac, torch.zeros(5, 3, dtype=torch.float64))


def linear_probes(a, kind, n, seed=0):
    """Probes ε [n, D] and Hutchinson's (εᵀJε [n], εᵀJ [n, D]) for v(x) = A x, whose Jacobian is A everywhere."""
    x = torch.randn(n, a.shape[0], dtype=a.dtype, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
    noise = sample_noise(x, kind, torch.Generator().manual_seed(seed + 1))
    return (noise, *hutchinson_divergence(x @ a.T, x, noise))


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_hutchinson_on_a_linear_field_has_mean_tr_a_and_the_known_variance(kind, matrix_a):
    # With S = (A + Aᵀ)/2: Var εᵀAε = 2‖S‖_F² (Gaussian), 2 Σ_{i≠j} S_ij² (Rademacher); both within 4 standard
    # errors over 10⁶ probes (those of the variance from the sample's fourth central moment).
    n = 1_000_000
    _, estimate, _ = linear_probes(matrix_a, kind, n)
    sym = (matrix_a + matrix_a.T) / 2
    off_diagonal = sym.square().sum() - sym.diagonal().square().sum()
    variance = 2 * (sym.square().sum() if kind == "gaussian" else off_diagonal)
    centred = estimate - estimate.mean()
    assert abs(float(estimate.mean() - matrix_a.trace())) < 4 * float(estimate.std()) / math.sqrt(n)
    se_variance = math.sqrt(float(centred.pow(4).mean() - centred.square().mean().square()) / n)
    assert abs(float(centred.square().mean() - variance)) < 4 * se_variance
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(exact_divergence(x @ matrix_a.T, x)[0], matrix_a.trace().expand(5), atol=1e-14, rtol=0)


def test_hutchinsons_second_output_is_the_vector_jacobian_product(matrix_a):
    # εᵀJ, as documented (the regularizer also only needs E‖·‖² = ‖J‖_F², which Jε has too): for J = A, ε A.
    noise, _, eps_jac = linear_probes(matrix_a, "gaussian", 8)
    torch.testing.assert_close(eps_jac, noise @ matrix_a, atol=1e-14, rtol=0)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_has_zero_mean_and_unit_covariance_within_standard_errors(kind):
    # Per entry over n draws: the mean has standard error 1/√n, E[ε_i ε_j] at most √(2/n) (Gaussian diagonal).
    n = 1_000_000
    eps = sample_noise(torch.zeros(n, 3, dtype=torch.float64), kind, torch.Generator().manual_seed(2))
    assert float(eps.mean(dim=0).abs().max()) < 4 / math.sqrt(n)
    assert float((eps.T @ eps / n - torch.eye(3, dtype=torch.float64)).abs().max()) < 4 * math.sqrt(2 / n)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_the_generator_alone_decides_the_noise(kind):
    # The same seed gives the same probes whatever the global stream, which it leaves alone; another seed differs.
    like = torch.zeros(64, 3, dtype=torch.float64)
    first = sample_noise(like, kind, torch.Generator().manual_seed(4))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    assert torch.equal(sample_noise(like, kind, torch.Generator().manual_seed(4)), first)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(sample_noise(like, kind, torch.Generator().manual_seed(5)), first)


@pytest.mark.parametrize("estimator", ["exact", "hutchinson"])
def test_create_graph_gives_the_divergences_gradient_in_the_fields_parameters(estimator, linear_field, matrix_a):
    # Training needs d(div)/dθ: for v(x) = A x, ∂ tr A/∂A = I per sample and ∂ εᵀAε/∂A = εεᵀ.
    field = linear_field(matrix_a, learnable=True)
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    noise = sample_noise(x, "gaussian", torch.Generator().manual_seed(1))
    v = field(torch.tensor(0.0), x)
    if estimator == "exact":
        div, _ = exact_divergence(v, x, create_graph=True)
        expected = 4 * torch.eye(3, dtype=torch.float64)
    else:
        div, _ = hutchinson_divergence(v, x, noise, create_graph=True)
        expected = noise.T @ noise
    (grad,) = torch.autograd.grad(div.sum(), field.a)
    torch.testing.assert_close(grad, expected, atol=1e-12, rtol=0)
