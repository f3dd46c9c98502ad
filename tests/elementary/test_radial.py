"""Radial flow: the constraint β > -α, the closed-form inverse (also at the centre and far away), and the
exact log-det."""
import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ctflows.core import Inverse
from ctflows.elementary import Radial
from brute_force import brute_force_logdets
from gradient_check import assert_parameter_gradients_match_finite_differences


def radial_with(center, alpha_raw, beta_raw):
    layer = Radial(len(center)).double()
    with torch.no_grad():
        layer.center.copy_(torch.tensor(center))
        layer.alpha_raw.fill_(alpha_raw)
        layer.beta_raw.fill_(beta_raw)
    return layer


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.floats(-5, 5),
    st.floats(-15, 10),
    st.sampled_from([1e-3, 1.0, 100.0]),
)
def test_round_trip_and_constraint(seed, alpha_raw, beta_raw, spread):
    g = torch.Generator().manual_seed(seed)
    layer = radial_with(torch.randn(3, generator=g).tolist(), alpha_raw, beta_raw)
    alpha, beta = layer.alpha_beta()
    assert alpha > 0 and beta >= -alpha
    x = layer.center.detach() + torch.randn(32, 3, generator=g, dtype=torch.float64) * spread
    x[0] = layer.center.detach()  # the centre itself
    z, logdet = layer(x)
    x_back, logdet_inv = layer.inverse(z)
    assert torch.isfinite(logdet).all()
    torch.testing.assert_close(x_back, x, atol=1e-9, rtol=1e-10)
    # Near the constraint (β → -α) the Jacobian at the centre nears 0 and |log det| reaches about 30; the round
    # trip then agrees to a few parts in 1e10 (seed 177, α_raw 4, β_raw -12, spread 1e-3: 1.3e-8 absolute).
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-8, rtol=1e-9)


@pytest.mark.parametrize("beta_raw", [-3.0, 0.0, 2.0])
def test_log_det_matches_jacobian(beta_raw):
    layer = radial_with([0.5, -1.0, 0.2, 0.0], 0.3, beta_raw)
    x = torch.randn(5, 4, dtype=torch.float64)
    _, logdet = layer(x)
    torch.testing.assert_close(logdet, brute_force_logdets(layer, x), atol=1e-12, rtol=0)


def test_starts_as_the_identity():
    layer = Radial(3)
    x = torch.randn(6, 3)
    z, logdet = layer(x)
    assert torch.equal(z, x)
    torch.testing.assert_close(logdet, torch.zeros(6), atol=1e-6, rtol=0)  # (α + r)² expanded: rounding only


@pytest.mark.parametrize("beta_raw, spread", [(0.0, 10.0), (5.0, 1.0)])
def test_inverse_is_accurate_for_a_tiny_alpha(beta_raw, spread):
    # α ≈ 1.4e-11: with ρ > α + β the quadratic r² + (α + β - ρ) r - αρ = 0 has p = α + β - ρ < 0 and its root
    # (-p + √(p² + 4αρ)) / 2 is free of cancellation, while 2αρ / (p + √·) loses about 10 digits there
    # (the round trip was off by 4e-5). The inverse must pick the cancellation-free form on each side of p = 0.
    layer = radial_with([0.5, -1.0, 0.2], -25.0, beta_raw)
    g = torch.Generator().manual_seed(0)
    x = layer.center.detach() + torch.randn(64, 3, generator=g, dtype=torch.float64) * spread
    z, logdet = layer(x)
    x_back, logdet_inv = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-12, rtol=0)


@pytest.mark.parametrize("alpha_raw, beta_raw", [(0.0, 0.0), (0.3, -3.0), (-1.0, 2.0)])
def test_alpha_beta_are_the_parameters_of_the_map(alpha_raw: float, beta_raw: float) -> None:
    """``alpha_beta()`` returns the α > 0 and β > -α of z = x + β (x - x₀) / (α + ‖x - x₀‖), which at the start
    (α̂ = β̂ = 0) are log 2 and 0."""
    layer = radial_with([0.5, -1.0, 0.2], alpha_raw, beta_raw)
    with torch.no_grad():
        alpha, beta = layer.alpha_beta()
    assert alpha > 0 and beta > -alpha
    if alpha_raw == beta_raw == 0.0:
        assert float(alpha) == pytest.approx(math.log(2), rel=1e-15) and float(beta) == 0.0
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    diff = x - layer.center.detach()
    expected = x + beta * diff / (alpha + diff.norm(dim=1, keepdim=True))
    torch.testing.assert_close(layer(x)[0], expected, atol=1e-13, rtol=1e-13)


@pytest.mark.parametrize("alpha_raw, spread", [(0.3, 2.0), (-40.0, 10.0)])
def test_inverse_parameter_gradients_match_finite_differences(alpha_raw: float, spread: float) -> None:
    """The closed-form inverse differentiates correctly in every parameter, also where α ≈ 4e-18 makes the unused
    branch 2αρ / (p + √(p² + 4αρ)) divide by zero (its NaN gradient must not leak through torch.where)."""
    layer = radial_with([0.5, -1.0, 0.2], alpha_raw, -0.5)
    g = torch.Generator().manual_seed(0)
    z = layer.center.detach() + torch.randn(6, 3, generator=g, dtype=torch.float64) * spread
    assert_parameter_gradients_match_finite_differences(Inverse(layer), z, None, abs_tol=1e-7, name="inverse radial")


def test_alpha_beta_differentiate_as_their_formulas() -> None:
    """α = softplus(α̂) and β = softplus(β̂) - α, so dα/dα̂ = σ(α̂), dβ/dα̂ = -σ(α̂), dβ/dβ̂ = σ(β̂) (σ the logistic
    function): a penalty on β written with ``alpha_beta()`` trains both raw parameters."""
    layer = radial_with([0.0, 0.0], 0.7, -1.3)
    alpha, beta = layer.alpha_beta()
    sigma_a, sigma_b = torch.sigmoid(torch.tensor(0.7, dtype=torch.float64)), torch.sigmoid(torch.tensor(-1.3, dtype=torch.float64))
    for value, expected in ((alpha, (sigma_a, 0.0)), (beta, (-sigma_a, sigma_b))):
        grads = torch.autograd.grad(value, (layer.alpha_raw, layer.beta_raw), allow_unused=True, retain_graph=True)
        got = [0.0 if g is None else float(g) for g in grads]
        assert got == pytest.approx([float(e) for e in expected], rel=1e-12, abs=1e-15)


def test_near_the_constraint_log_det_and_inverse_keep_their_relative_accuracy_close_to_the_centre() -> None:
    """With β = -α + 9e-14 (β̂ = -30) the map contracts the centre's neighbourhood by about 1e-13. Its log-det
    (D - 1) log(1 + β/(α + r)) + log(1 + αβ/(α + r)²), here evaluated in exact rational arithmetic, must be met to
    1e-12 even at r = 1e-12 (both terms cancel to about 1e-13 when formed literally), and the inverse must give back
    points 1e-6 from the centre to 1e-8 relative (a floor on α + β of even 1e-6 there would double them)."""
    layer = radial_with([0.0, 0.0, 0.0], 0.0, -30.0)
    alpha, gap = (Fraction(float(F.softplus(p.detach()))) for p in (layer.alpha_raw, layer.beta_raw))
    beta = gap - alpha
    distances = [0.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-2, 1.0]
    x = torch.zeros(len(distances), 3, dtype=torch.float64)
    x[:, 1] = torch.tensor(distances, dtype=torch.float64)  # r = the distance exactly
    z, logdet = layer(x)
    expected = [
        2 * math.log(1 + beta / (alpha + Fraction(r))) + math.log(1 + alpha * beta / (alpha + Fraction(r)) ** 2) for r in distances
    ]
    torch.testing.assert_close(logdet, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)
    far = torch.tensor(distances) >= 1e-6
    torch.testing.assert_close(layer.inverse(z[far])[0], x[far], atol=0, rtol=1e-8)


@pytest.mark.parametrize("features", [1, 2])
def test_low_dimensional_log_det_matches_jacobian_and_round_trips(features: int) -> None:
    """In one dimension only the radial term log(1 + αβ/(α + r)²) is left (the (D - 1) tangential terms vanish)."""
    layer = radial_with([0.3, -0.2][:features], 0.4, -1.0)
    x = torch.randn(6, features, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    z, logdet = layer(x)
    torch.testing.assert_close(logdet, brute_force_logdets(layer, x), atol=1e-12, rtol=0)
    x_back, logdet_inv = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-12, rtol=0)
