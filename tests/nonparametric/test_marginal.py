"""MarginalGaussianization, the normal quantile from logs, and the bracketed Newton solver: exact
log-dets, round trips into the translated tails, and a clear SolverError when a solve cannot converge."""

import math

import pytest
import torch

from ctflows.errors import ConfigurationError, DataError, SolverError
from ctflows.nonparametric import MarginalGaussianization, normal_quantile, solve_increasing


def fitted_layer():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(300, 2) * 0.3 - 1, torch.randn(200, 2) + 2]).double()  # bimodal columns
    return MarginalGaussianization.from_data(x, kernels=16), x


def test_logdet_matches_brute_force_jacobian_inside_and_in_the_tails():
    layer, _ = fitted_layer()
    lo, hi = layer.tail_bounds()
    x = torch.tensor([[-1.0, 2.0], [0.3, -0.5], [float(lo[0].detach()) - 3, float(hi[1].detach()) + 5]], dtype=torch.float64)
    _, logdet = layer(x)
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda r: layer(r.unsqueeze(0))[0].squeeze(0), x[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jac).logabsdet, atol=1e-10, rtol=0)


def test_round_trip_from_the_bulk_to_far_tails():
    layer, x = fitted_layer()
    z = torch.linspace(-12, 12, 97, dtype=torch.float64).unsqueeze(1).expand(-1, 2).contiguous()
    x_back, logdet_inv = layer.inverse(z)
    z_again, logdet = layer(x_back)
    torch.testing.assert_close(z_again, z, atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-10, rtol=0)
    assert (torch.diff(x_back[:, 0]) > 0).all()  # strictly increasing
    x_fwd, _ = layer(x)
    torch.testing.assert_close(layer.inverse(x_fwd)[0], x, atol=1e-10, rtol=0)


def test_fitted_marginals_are_close_to_standard_normal():
    layer, x = fitted_layer()
    with torch.no_grad():
        z, _ = layer(x)
    # Kolmogorov distance of each column's empirical CDF to Φ: the bimodal input's is far above it.
    levels = (torch.arange(1, x.shape[0] + 1, dtype=torch.float64) - 0.5) / x.shape[0]
    ks = lambda cols: (torch.special.ndtr(cols.sort(dim=0).values) - levels.unsqueeze(1)).abs().amax(dim=0)
    assert ks(z).max() < 0.05 < ks((x - x.mean(0)) / x.std(0)).min()


def test_from_data_refuses_constant_columns_and_single_points():
    with pytest.raises(DataError, match="constant"):
        MarginalGaussianization.from_data(torch.ones(50, 2, dtype=torch.float64))
    with pytest.raises(DataError, match="at least 2"):
        MarginalGaussianization.from_data(torch.zeros(1, 2, dtype=torch.float64))


@pytest.mark.parametrize("setting", [{"bandwidth": 0.0}, {"bandwidth": -1.0}, {"bandwidth": float("nan")},
                                     {"bandwidth": float("inf")}, {"kernels": 0}, {"kernels": 2.5}])
def test_from_data_refuses_settings_that_give_no_valid_kernels(setting):
    # A zero, negative or NaN bandwidth made log-scales of -inf or NaN, so every density it gave was NaN.
    with pytest.raises(ConfigurationError, match=next(iter(setting))):
        MarginalGaussianization.from_data(torch.randn(50, 2, dtype=torch.float64), **setting)


def test_normal_quantile_is_accurate_in_both_tails():
    p = torch.tensor([1e-300, 1e-20, 1e-5, 0.3, 0.5, 0.7], dtype=torch.float64)
    z = normal_quantile(torch.log(p), torch.log1p(-p))
    torch.testing.assert_close(z, torch.special.ndtri(p), atol=1e-9, rtol=1e-12)
    # Far beyond the smallest double: -Φ⁻¹(e^ℓ) must still satisfy log Φ(-t) = ℓ.
    ell = torch.tensor([-800.0, -5000.0], dtype=torch.float64)
    t = normal_quantile(torch.log1p(-torch.exp(ell)), ell)  # p = 1 - e^ℓ: the upper tail
    torch.testing.assert_close(torch.special.log_ndtr(-t), ell, atol=0, rtol=1e-10)


def test_solver_raises_a_clear_error_when_it_cannot_converge():
    def cubic(x):
        return x**3, 3 * x**2

    target = torch.tensor([2.0], dtype=torch.float64)
    root, _ = solve_increasing(cubic, target, torch.zeros(1, dtype=torch.float64), torch.full((1,), 4.0, dtype=torch.float64))
    torch.testing.assert_close(root, target ** (1 / 3), atol=1e-12, rtol=0)
    with pytest.raises(SolverError, match="did not converge.*tolerance"):
        solve_increasing(cubic, target, torch.zeros(1, dtype=torch.float64), torch.full((1,), 4.0, dtype=torch.float64), max_iterations=2, owner="demo")


@pytest.mark.parametrize("kernels, bound", [(1, 0.11), (2, 0.08), (4, 0.26), (8, 0.14), (16, 0.09), (32, 0.07), (128, 0.1)])
def test_the_default_layer_is_close_to_the_identity_on_the_whole_line(kernels, bound):
    # The docstring's numbers, tails included (past the translation points the error stays constant).
    layer = MarginalGaussianization(1, kernels).double()
    x = torch.linspace(-8, 8, 3201, dtype=torch.float64).unsqueeze(1)
    with torch.no_grad():
        z, logdet = layer(x)
    assert float((z - x).abs().max()) < bound
    assert float(logdet.abs().max()) < 0.35  # the slope stays within a factor 1.42 of 1


def test_the_default_layer_with_few_kernels_is_a_unit_variance_mixture():
    # Fewer than 8 kernels share the scale whose variance is what the quantile grid lacks of 1: the mixture
    # density F' then has variance 1 (quadrature of x² F'(x), F' = (dz/dx) φ(z)).
    import math

    layer = MarginalGaussianization(1, 4).double()
    x = torch.linspace(-12, 12, 240001, dtype=torch.float64).unsqueeze(1)
    with torch.no_grad():
        z, log_slope = layer._mixture(x)
    density = torch.exp(log_slope - 0.5 * z.square() - 0.5 * math.log(2 * math.pi)).squeeze(1)
    dx = 24 / 240000
    assert float(density.sum() * dx) == pytest.approx(1.0, abs=1e-6)
    assert float((x.squeeze(1) ** 2 * density).sum() * dx) == pytest.approx(1.0, abs=1e-5)
    assert torch.unique(layer.log_scale).numel() == 1


def test_the_solver_polishes_the_root_to_the_dtype_floor_even_with_a_loose_tolerance():
    # g(x) = x³ + x has the exact roots 2, 1, -3 for the targets 10, 2, -30; the closing Newton step
    # squares the last step, so a tolerance of 1e-3 still leaves an error near float64 rounding.
    target = torch.tensor([10.0, 2.0, -30.0], dtype=torch.float64)
    lo, hi = torch.full_like(target, -10.0), torch.full_like(target, 10.0)
    x, _ = solve_increasing(lambda x: (x**3 + x, 3 * x**2 + 1), target, lo, hi, tolerance=1e-3)
    torch.testing.assert_close(x, torch.tensor([2.0, 1.0, -3.0], dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normal_quantile_is_finite_and_accurate_down_to_the_most_negative_log(dtype):
    # log Φ(-t) = ℓ means t²/2 + log t + ½ log 2π = -ℓ up to O(1/t²) (below 1e-20 relative here); checked in
    # float64 without forming t², which overflows near the dtype's limit. Float32 gave NaN from ℓ = -1e20 on, float64 from -1e308 on.
    ell = torch.tensor([-1e10, -1e20, -1e30, -1e37, torch.finfo(dtype).min], dtype=dtype, requires_grad=True)
    t = normal_quantile(torch.log1p(-torch.exp(ell.detach())), ell)
    assert torch.isfinite(t).all() and (t > 0).all(), t
    t64, minus_ell = t.detach().double(), -ell.detach().double()
    half_t_squared = (t64 / math.sqrt(2)).square()
    lhs = half_t_squared + torch.log(t64) + 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(lhs / minus_ell, torch.ones_like(lhs), atol=0, rtol=8 * torch.finfo(dtype).eps)
    # dt/dℓ = -Φ(-t)/φ(t) ≈ -1/t: finite, so a map built on it trains.
    (slope,) = torch.autograd.grad(t.sum(), ell)
    torch.testing.assert_close((slope.double() * -t64), torch.ones_like(t64), atol=0, rtol=1e-3)
