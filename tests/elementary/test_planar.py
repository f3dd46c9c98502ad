"""Planar flow: the invertibility constraint wᵀû > -1 for any raw parameters, the numerical inverse to
1e-8 in float64 where the map is well conditioned and to what rounding allows where it is nearly flat, exact
log-det, and implicit gradients."""
import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ctflows.core import Inverse
from ctflows.elementary import Planar
from ctflows.errors import SolverError
from brute_force import brute_force_logdets
from gradient_check import assert_parameter_gradients_match_finite_differences

floats = st.floats(-50, 50)


def rounding_allows(layer, x, z):
    """How far from ``x [B, D]`` the inverse of ``z`` may land on float64 rounding alone, per sample ``[B]``.

    r = wᵀz + b carries an error ε_r of a few eps·Σ|w_i|(|z_i| + |x_i| + |û_i|) (the forward's rounding of z
    included). The root a of φ(a) = a + c·tanh(a) = r then moves by at most ε_r / min φ' = ε_r / (1 + min(c, 0)),
    and, where the map is flat, no more than the cubic φ ≈ (1 + c)a + |c|a³/3 allows: (12 ε_r / |c|)^(1/3).
    The solver adds its relative step tolerance, and x = z - tanh(a)·û moves by ‖û‖ times all that.
    """
    eps = torch.finfo(torch.float64).eps
    with torch.no_grad():
        u, one_plus_c = layer._constrained()
        c = float(layer.w @ u)
        d = x.shape[1]
        eps_r = 8 * d * eps * (abs(float(layer.b)) + ((z.abs() + x.abs() + u.abs()) * layer.w.abs()).sum(1))
        linear = eps_r / float(one_plus_c.clamp(max=1.0))
        cubic = (12 * eps_r / max(abs(c), 1e-300)) ** (1 / 3)
        r = z @ layer.w + layer.b  # |root| <= |r| + |c|, which bounds the solver's relative step tolerance
        root = torch.minimum(linear, cubic) + 3e-13 * (1 + r.abs() + abs(c))
        return root * float(u.norm()) + 8 * d * eps * (x.abs() + z.abs() + u.abs()).amax(1)


def planar_with(u, w, b=0.0, **kwargs):
    layer = Planar(len(u), **kwargs).double()
    with torch.no_grad():
        layer.u.copy_(torch.tensor(u))
        layer.w.copy_(torch.tensor(w))
        layer.b.fill_(b)
    return layer


def planar_with_slope(target: float, w: torch.Tensor, b: float = 0.0, **kwargs: object) -> Planar:
    """A float64 Planar along ``w`` whose u = k·w gives 1 + wᵀû = softplus(k‖w‖²) = ``target`` (> 0)."""
    return planar_with((math.log(math.expm1(target)) * w / w.square().sum()).tolist(), w.tolist(), b=b, **kwargs)


@settings(max_examples=100, deadline=None)
@example(([2.0, 0.0, 0.0, 0.0, 0.0, 0.0], [-11.043474999382397, 0.0, 0.99609375, 0.0, 47.09375, 3.626421644374446]))
@given(st.integers(1, 6).flatmap(lambda d: st.tuples(*[st.lists(floats, min_size=d, max_size=d)] * 2)))
def test_constraint_holds_for_any_parameters(uw):
    u, w = uw
    layer = planar_with(u, w)
    with torch.no_grad():
        c, wu = layer.w @ layer.u_hat(), layer.w @ layer.u
    assert torch.isfinite(c) and c >= -1 - 1e-12 * (1 + abs(wu))  # up to rounding
    # and the map is invertible in practice: finite log-det, round trip
    x = torch.randn(8, len(u), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z, logdet = layer(x)
    assert torch.isfinite(logdet).all()
    back = layer.inverse(z)[0]
    torch.testing.assert_close(layer(back)[0], z, atol=1e-10, rtol=1e-12)  # backward stable: z is reproduced
    # In x the inverse is as ill-conditioned as the map is flat (a random example reached 3.5e-6).
    error = (back - x).abs().amax(1)
    assert (error <= rounding_allows(layer, x, z)).all(), (error, rounding_allows(layer, x, z))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([0.1, 1.0, 10.0]),
    st.floats(-1.0, -0.999) | st.floats(-1.0, 20.0),  # target wᵀû, including nearly non-invertible maps
)
def test_numeric_inverse_round_trips_to_1e_8(seed, spread, target):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, generator=g, dtype=torch.float64)
    # choose u = k w so that wᵀû = -1 + softplus(k‖w‖²) equals the target (clamped just above -1)
    softplus_inverse = torch.log(torch.expm1(torch.tensor(max(target + 1, 1e-6), dtype=torch.float64)))
    layer = planar_with((softplus_inverse * w / w.square().sum()).tolist(), w.tolist(), b=0.3)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64) * spread
    z, logdet = layer(x)
    x_back, logdet_inv = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-8, rtol=1e-8)  # |log-det| reaches 14 near c = -1
    assert layer.stats["iterations"] <= 100


def test_log_det_matches_jacobian():
    layer = planar_with([1.5, -2.0, 0.5], [0.7, 0.2, -1.1], b=-0.4)
    x = torch.randn(5, 3, dtype=torch.float64)
    _, logdet = layer(x)
    torch.testing.assert_close(logdet, brute_force_logdets(layer, x), atol=1e-12, rtol=0)


def test_inverse_gradient_is_the_implicit_one():
    layer = planar_with([1.5, -2.0, 0.5], [0.7, 0.2, -1.1], b=-0.4)
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    x, _ = layer.inverse(z)
    (dx_dz,) = torch.autograd.grad(x[0].sum(), z)
    # d(f⁻¹)/dz = (∂f/∂x)⁻¹ at x = f⁻¹(z)
    jac = torch.autograd.functional.jacobian(lambda r: layer(r[None])[0][0], x[0].detach())
    torch.testing.assert_close(dx_dz[0], torch.linalg.inv(jac).sum(dim=0), atol=1e-10, rtol=0)
    x, _ = layer.inverse(z)
    params = torch.autograd.grad(x.square().sum(), list(layer.parameters()))
    assert all(torch.isfinite(p).all() and p.abs().sum() > 0 for p in params)


def test_starts_near_the_identity_and_reports_non_convergence():
    layer = Planar(4).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x)[0], x, atol=1e-6, rtol=0)  # exact up to float32 initialisation
    stubborn = planar_with([3.0, 0.0], [1.0, 0.0], max_iterations=1, tolerance=1e-300)
    with pytest.raises(SolverError, match="Planar.*did not converge"):
        stubborn.inverse(torch.randn(6, 2, dtype=torch.float64) * 5)


def test_with_w_zero_the_map_is_a_translation_with_zero_log_det():
    layer = Planar(3).double()
    with torch.no_grad():
        layer.w.zero_()
        layer.u.copy_(torch.tensor([1.0, 2.0, 3.0]))
        layer.b.fill_(0.7)
    x = torch.randn(5, 3, dtype=torch.float64)
    z, logdet = layer(x)
    torch.testing.assert_close(z, x + math.tanh(0.7) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(logdet, torch.zeros(5, dtype=torch.float64))
    x_back, inverse_logdet = layer.inverse(z)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(inverse_logdet, torch.zeros(5, dtype=torch.float64))


def test_safeguarded_newton_converges_quickly_on_a_steep_ridge():
    # wᵀû = 20: φ(a) = a + 20 tanh(a) has a slope of 21 near 0 and 1 in the tails, and plain Newton (only kept inside
    # the bracket) zig-zags across the knee for hundreds of steps on some inputs (683 measured; the default limit of
    # 100 then raises SolverError). Bisecting whenever a Newton step is longer than half the step before last
    # (rtsafe's rule), with each sample stopped at its own root, keeps every one of these solves under 16 steps
    # (13 measured; 45 while converged samples were still moved with their batch).
    worst = 0
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        layer = planar_with_slope(21.0, torch.randn(3, generator=g, dtype=torch.float64))
        x = torch.randn(256, 3, generator=g, dtype=torch.float64)
        z, _ = layer(x)
        x_back, _ = layer.inverse(z)
        torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
        worst = max(worst, layer.stats["iterations"])
    assert worst <= 16, worst


def test_log_det_stays_finite_where_the_map_is_nearly_flat() -> None:
    """At a = wᵀx + b = 0, tanh' = 1, so det J = 1 + wᵀû = softplus(wᵀu): log-det ≈ -50 for wᵀu = -50.

    1 + wᵀû rounds to 0 there when formed as 1 + (softplus - 1): the log-det must not become -inf.
    """
    layer = planar_with([-50.0, 0.0], [1.0, 0.0], b=0.0)
    x = torch.tensor([[0.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    z, logdet = layer(x)
    expected = math.log(math.log1p(math.exp(-50.0)))  # log softplus(-50), computed without cancellation
    torch.testing.assert_close(logdet, torch.full((2,), expected, dtype=torch.float64), atol=0, rtol=1e-12)
    # the inverse's a = 0 is exact here; a root only within the solver's 1e-13 would move the log-det by ~1e-5
    torch.testing.assert_close(layer.inverse(z)[1], -logdet, atol=0, rtol=1e-5)


def test_max_iterations_is_the_number_of_steps_allowed() -> None:
    """A solve that took k steps succeeds with max_iterations = k (reporting k) and raises with k - 1."""
    g = torch.Generator().manual_seed(0)
    layer = planar_with_slope(21.0, torch.randn(3, generator=g, dtype=torch.float64))
    z = layer(torch.randn(32, 3, generator=g, dtype=torch.float64) * 3)[0]
    x = layer.inverse(z)[0]
    steps = layer.stats["iterations"]
    assert steps >= 2
    layer.max_iterations = steps
    torch.testing.assert_close(layer.inverse(z)[0], x, atol=0, rtol=0)
    assert layer.stats["iterations"] == steps
    layer.max_iterations = steps - 1
    with pytest.raises(SolverError, match=f"in {steps - 1} iterations"):
        layer.inverse(z)


@pytest.mark.parametrize("dtype, documented", [(torch.float64, 1e-13), (torch.float32, 1e-6)])
def test_tolerance_defaults_to_the_documented_one_and_is_honoured(dtype: torch.dtype, documented: float) -> None:
    """tolerance=None is the documented per-dtype tolerance (same steps, same result); a looser one stops sooner."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(3, generator=g, dtype=torch.float64)
    z = torch.randn(64, 3, generator=g, dtype=torch.float64).to(dtype) * 3

    def solve(tolerance: float | None) -> tuple[torch.Tensor, int]:
        layer = planar_with_slope(21.0, w, b=0.3, tolerance=tolerance).to(dtype)
        x = layer.inverse(z)[0]
        return x, layer.stats["iterations"]

    x_default, steps_default = solve(None)
    x_documented, steps_documented = solve(documented)
    assert steps_default == steps_documented
    torch.testing.assert_close(x_default, x_documented, atol=0, rtol=0)
    assert solve(documented * 1e5)[1] < steps_default


def test_stats_describe_the_last_call() -> None:
    """``stats["iterations"]`` is set by an inverse and cleared by a later forward (stats are the last call's)."""
    layer = planar_with([1.5, -2.0, 0.5], [0.7, 0.2, -1.1], b=-0.4)
    z = torch.randn(4, 3, dtype=torch.float64)
    layer.inverse(z)
    assert layer.stats["iterations"] >= 1
    layer(z)
    assert layer.stats == {}


def test_saturated_samples_take_one_newton_step() -> None:
    """Where tanh(a) = ±1 in float64 (|a| > 20), φ(a) = a ± c - r is linear with slope 1: one Newton step from a = r
    lands on the root, which lies on the end r - c of the initial bracket up to rounding; the next step is zero.
    (Inputs with a near 32 or 64, where r and the root straddle a power of two, round Newton's landing outside.)"""
    for target in (0.5, 3.0, 21.0):  # c = wᵀû = -0.5, 2, 20
        for seed in range(30):
            g = torch.Generator().manual_seed(seed)
            w = torch.randn(3, generator=g, dtype=torch.float64)
            layer = planar_with_slope(target, w, b=0.3)
            x = torch.randn(256, 3, generator=g, dtype=torch.float64) * 10
            x = x[(x @ w + 0.3).abs() > 20]
            if len(x) == 0:  # a short w: no saturated input
                continue
            z, _ = layer(x)
            x_back, _ = layer.inverse(z)
            torch.testing.assert_close(x_back, x, atol=1e-12, rtol=0)
            assert layer.stats["iterations"] == 2, (target, seed, layer.stats)


def test_a_batch_solves_in_as_many_steps_as_its_slowest_sample() -> None:
    """The per-sample root finding is independent of the batch, so a batch takes no more steps than its slowest
    sample alone (+1 for rounding of wᵀz): samples that converged first must not be disturbed meanwhile."""
    for seed, target in [(0, 0.01), (1, 3.0), (14, 21.0)]:
        g = torch.Generator().manual_seed(seed)
        layer = planar_with_slope(target, torch.randn(3, generator=g, dtype=torch.float64))
        z = layer(torch.randn(64, 3, generator=g, dtype=torch.float64) * 10)[0]
        slowest = 0
        for row in z:
            layer.inverse(row[None])
            slowest = max(slowest, layer.stats["iterations"])
        layer.inverse(z)
        assert layer.stats["iterations"] <= slowest + 1, (target, layer.stats["iterations"], slowest)


def test_inverse_parameter_gradients_match_finite_differences() -> None:
    """The inverse's log-det and output differentiate correctly in every parameter (through the implicit step)."""
    layer = planar_with([1.5, -2.0, 0.5], [0.7, 0.2, -1.1], b=-0.4)
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    assert_parameter_gradients_match_finite_differences(Inverse(layer), z, None, abs_tol=1e-7, name="inverse planar")


@pytest.mark.parametrize("scale", [3e-20, 1e-21])
def test_log_det_is_the_jacobians_where_the_squared_norm_of_w_is_subnormal(scale: float) -> None:
    """With ‖w‖² below float32's smallest normal number the floor on ‖w‖² makes wᵀû a fraction of softplus(wᵀu) - 1;
    the log-det must be that of the map û actually gives (it used log softplus(wᵀu), off by 0.33 here), both ways."""
    layer = Planar(2)
    with torch.no_grad():
        layer.w.fill_(scale)
        layer.u.copy_(torch.tensor([0.5, -0.2]))
        layer.b.fill_(0.3)
    assert 0 < float(layer.w.detach().square().sum()) < torch.finfo(torch.float32).tiny
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    z, logdet = layer(x)
    torch.testing.assert_close(logdet, brute_force_logdets(layer, x), atol=1e-5, rtol=0)
    # û is about 1e18 here, so x is lost in z's rounding, but a = wᵀx + b ≈ b and with it the inverse's log-det are not
    torch.testing.assert_close(layer.inverse(z)[1], -logdet, atol=1e-5, rtol=0)
