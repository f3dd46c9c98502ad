"""MarginalGaussianization, the normal quantile from logs, and the bracketed Newton solver: exact
log-dets, round trips into the translated tails, and a clear SolverError when a solve cannot converge."""

import math

import pytest
import torch

from ctflows.errors import ConfigurationError, DataError, SolverError
from ctflows.nonparametric import MarginalGaussianization, normal_quantile, solve_increasing
from brute_force import brute_force_logdets

TAIL_SCALES = 4.0  # kernel scales past the outermost kernel where the marginal map turns into a translation


def fitted_layer():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(300, 2) * 0.3 - 1, torch.randn(200, 2) + 2]).double()  # bimodal columns
    return MarginalGaussianization.from_data(x, kernels=16), x


def test_logdet_matches_brute_force_jacobian_inside_and_in_the_tails():
    layer, _ = fitted_layer()
    lo, hi = layer.tail_bounds()
    x = torch.tensor([[-1.0, 2.0], [0.3, -0.5], [float(lo[0].detach()) - 3, float(hi[1].detach()) + 5]], dtype=torch.float64)
    _, logdet = layer(x)
    torch.testing.assert_close(logdet, brute_force_logdets(layer, x), atol=1e-10, rtol=0)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_inverse_takes_a_few_newton_iterations_from_the_bulk_to_far_tails(dtype):
    """The kernels' own roots bracket the root tightly and targets past the translation points are clamped to
    them, so the bracketed Newton search needs few iterations (30 or more when either is lost)."""
    layer, _ = fitted_layer()
    layer = layer.to(dtype)
    z = torch.linspace(-12, 12, 2001, dtype=dtype).unsqueeze(1).expand(-1, 2).contiguous()
    with torch.no_grad():
        layer.inverse(z)
    assert layer.stats["iterations"] <= 15


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


def mixture_moments(layer, lo, hi, n=240001):
    """Mass, mean and variance of a one-feature layer's mixture density F' = (dz/dx) φ(z), by quadrature on [lo, hi]."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64).unsqueeze(1)
    with torch.no_grad():
        z, log_slope = layer._mixture(x)
    density = torch.exp(log_slope - 0.5 * z.square() - 0.5 * math.log(2 * math.pi)).squeeze(1)
    x, dx = x.squeeze(1), (hi - lo) / (n - 1)
    mass = float(density.sum() * dx)
    mean = float((x * density).sum() * dx)
    return mass, mean, float(((x - mean) ** 2 * density).sum() * dx)


def test_the_default_layer_with_few_kernels_is_a_unit_variance_mixture():
    # Fewer than 8 kernels share the scale whose variance is what the quantile grid lacks of 1: the mixture
    # density F' then has variance 1.
    mass, mean, variance = mixture_moments(MarginalGaussianization(1, 4).double(), -12.0, 12.0)
    assert mass == pytest.approx(1.0, abs=1e-6)
    assert mean == pytest.approx(0.0, abs=1e-9)
    assert variance == pytest.approx(1.0, abs=1e-5)
    assert torch.unique(MarginalGaussianization(1, 4).log_scale).numel() == 1


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


def mixture_cdf_and_log_density(layer, x):
    """F(x) and log F'(x) of the layer's logistic mixture, straight from its parameters: ``x [B, D] -> [B, D]`` each."""
    weight = torch.softmax(layer.weight_logit.detach(), dim=-1)
    scale = layer.log_scale.detach().exp()
    t = (x.unsqueeze(-1) - layer.loc.detach()) / scale
    cdf = (weight * torch.sigmoid(t)).sum(dim=-1)
    density = (weight * torch.sigmoid(t) * torch.sigmoid(-t) / scale).sum(dim=-1)
    return cdf, torch.log(density)


def test_the_map_is_the_mixture_quantile_out_to_four_kernel_scales_and_a_unit_slope_translation_beyond():
    """Φ(z) = F(x) with log dz/dx = log F' - log φ(z) on [outermost μ - 4s, outermost μ + 4s] (unequal kernel
    weights), and z = z(b±) + (x - b±) with log-det 0 beyond."""
    layer, _ = fitted_layer()
    with torch.no_grad():
        layer.weight_logit.copy_(torch.randn(layer.weight_logit.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    loc, scale = layer.loc.detach(), layer.log_scale.detach().exp()
    lo, hi = (loc - TAIL_SCALES * scale).amin(dim=1), (loc + TAIL_SCALES * scale).amax(dim=1)
    x = lo + (hi - lo) * torch.linspace(0, 1, 801, dtype=torch.float64).unsqueeze(1)
    with torch.no_grad():
        z, logdet = layer(x)
    cdf, log_density = mixture_cdf_and_log_density(layer, x)
    torch.testing.assert_close(torch.special.ndtr(z), cdf, atol=1e-13, rtol=1e-10)
    expected = (log_density + 0.5 * z.square() + 0.5 * math.log(2 * math.pi)).sum(dim=1)
    torch.testing.assert_close(logdet, expected, atol=1e-10, rtol=0)
    step = torch.tensor([[0.5], [3.0], [40.0]], dtype=torch.float64)
    with torch.no_grad():
        edges = layer(torch.stack([lo, hi]))[0]
        below, logdet_below = layer(lo - step)
        above, logdet_above = layer(hi + step)
    torch.testing.assert_close(below, edges[0] - step, atol=1e-12, rtol=0)
    torch.testing.assert_close(above, edges[1] + step, atol=1e-12, rtol=0)
    assert (logdet_below == 0).all() and (logdet_above == 0).all()


def test_the_inverse_is_differentiable_with_the_inverse_slope_and_parameter_gradients():
    """x = f⁻¹(z) from the bulk into the translated tails: ∂x/∂z = 1/(∂z/∂x) at x, and the derivative of x along
    a direction in (μ, log s, weight logits) matches central differences."""
    layer, _ = fitted_layer()
    z = torch.tensor([[-6.0, 0.3], [0.7, -2.5], [2.2, 6.0]], dtype=torch.float64, requires_grad=True)
    x = layer.inverse(z)[0]
    (dx_dz,) = torch.autograd.grad(x.sum(), z)
    x = x.detach().requires_grad_()
    (dz_dx,) = torch.autograd.grad(layer(x)[0].sum(), x)  # the map acts per coordinate: the Jacobian is diagonal
    torch.testing.assert_close(dx_dz, 1 / dz_dx, atol=1e-10, rtol=1e-8)
    params = [layer.loc, layer.log_scale, layer.weight_logit]
    generator = torch.Generator().manual_seed(2)
    direction = [torch.randn(p.shape, dtype=p.dtype, generator=generator) for p in params]
    grads = torch.autograd.grad(layer.inverse(z.detach())[0].sum(), params)
    along = sum(float((g * v).sum()) for g, v in zip(grads, direction))
    h = 1e-6

    def shifted(sign):
        with torch.no_grad():
            for p, v in zip(params, direction):
                p.add_(sign * h * v)
            value = float(layer.inverse(z.detach())[0].sum())
            for p, v in zip(params, direction):
                p.sub_(sign * h * v)
        return value

    assert along == pytest.approx((shifted(1) - shifted(-1)) / (2 * h), rel=1e-6, abs=1e-8)


def test_a_one_kernel_fit_is_centred_at_the_median_with_bandwidth_times_the_sample_deviation():
    """K = 1: F' is one logistic at the sample median whose standard deviation is bandwidth × the sample's."""
    x = 3.0 + 2.5 * torch.randn(400, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    layer = MarginalGaussianization.from_data(x, kernels=1, bandwidth=1.5)
    mass, mean, variance = mixture_moments(layer, 3.0 - 100.0, 3.0 + 100.0)
    assert mass == pytest.approx(1.0, abs=1e-9)
    assert mean == pytest.approx(float(x.quantile(0.5)), abs=1e-6)
    assert math.sqrt(variance) == pytest.approx(1.5 * float(x.std()), rel=1e-6)


def test_from_data_with_tied_values_or_fewer_points_than_kernels_gives_a_valid_map():
    """Columns with repeated values (zero quantile gaps) still give a finite, strictly increasing, invertible map,
    and N < K points give one kernel per point."""
    generator = torch.Generator().manual_seed(0)
    ties = torch.cat([torch.zeros(300, 1, dtype=torch.float64),
                      torch.randn(200, 1, dtype=torch.float64, generator=generator)])
    rounded = torch.round(2 * torch.randn(500, 1, dtype=torch.float64, generator=generator))
    layer = MarginalGaussianization.from_data(torch.cat([ties, rounded], dim=1))
    grid = torch.linspace(-6, 6, 1201, dtype=torch.float64).unsqueeze(1).expand(-1, 2)
    with torch.no_grad():
        z, logdet = layer(grid)
        assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
        assert (torch.diff(z, dim=0) > 0).all()
        torch.testing.assert_close(layer.inverse(z)[0], grid, atol=1e-9, rtol=0)
    few = MarginalGaussianization.from_data(torch.randn(5, 3, dtype=torch.float64, generator=generator), kernels=32)
    assert few.loc.shape == few.log_scale.shape == few.weight_logit.shape == (3, 5)


def test_from_data_fits_each_column_on_its_own() -> None:
    """A marginal map acts per coordinate, so column j's kernels come from column j alone: a column with tied values
    (where the floor on the scales acts) gets the kernels of fitting it alone, next to another column in any units.
    (The floor was the smallest spread of all columns: 1e-4 × the other column moved this one's log-density by 9 nats.)"""
    generator = torch.Generator().manual_seed(0)
    rounded = torch.round(torch.randn(500, 1, dtype=torch.float64, generator=generator))
    other = torch.randn(500, 1, dtype=torch.float64, generator=generator)
    alone = MarginalGaussianization.from_data(rounded)
    for scale in (1.0, 1e-4, 1e4):
        pair = MarginalGaussianization.from_data(torch.cat([rounded, scale * other], dim=1))
        for name in ("loc", "log_scale", "weight_logit"):
            torch.testing.assert_close(getattr(pair, name)[:1], getattr(alone, name), rtol=0, atol=1e-12, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normal_quantile_keeps_full_accuracy_where_ndtri_gives_way_to_the_newton_solve(dtype):
    """log Φ(-t) = ℓ to a few ulps for ℓ on both sides of the log of the smallest normal number (subnormal
    probabilities have lost digits) and far beyond, and the lower tail is the mirror image."""
    floor = math.log(torch.finfo(dtype).tiny)
    deep = -torch.logspace(3, 4.5, 31, dtype=torch.float64)
    ell = torch.cat([torch.linspace(floor - 40, floor + 5, 451, dtype=torch.float64), deep]).to(dtype)
    log_q = torch.log1p(-torch.exp(ell))
    t = normal_quantile(log_q, ell)
    torch.testing.assert_close(torch.special.log_ndtr(-t.double()), ell.double(), atol=0, rtol=8 * torch.finfo(dtype).eps)
    assert torch.equal(normal_quantile(ell, log_q), -t)


def cube_root(x):
    """g(x) = ∛x: at every x ≠ 0 the Newton step lands at -2x, overshooting the root 0."""
    return torch.sign(x) * x.abs() ** (1 / 3), x.abs() ** (-2 / 3) / 3


def eleventh_power(x):
    """g(x) = x¹¹: plain Newton converges only linearly (by 10/11 a step) to the root 0."""
    return x**11, 11 * x**10


def minus_root_of_two_less(x):
    """g(x) = -√(2 - x), increasing on (-∞, 2] and NaN beyond; Newton steps from the left overshoot past 2."""
    r = torch.sqrt(2 - x)
    return -r, 0.5 / r


@pytest.mark.parametrize("fn, target, root, start", [
    (cube_root, 0.0, 0.0, None), (eleventh_power, 0.0, 0.0, 0.9), (minus_root_of_two_less, -0.1, 1.99, 1.9),
    (minus_root_of_two_less, -0.1, 1.99, 3.0), (minus_root_of_two_less, -0.1, 1.99, -1e3),
], ids=["cube_root", "eleventh_power", "overshoot", "start_above", "start_below"])
def test_the_solver_bisects_when_newton_overshoots_or_crawls_and_evaluates_only_inside_the_bracket(fn, target, root, start):
    """The default float64 tolerance is reached where every Newton step overshoots (∛x) or crawls (x¹¹); fn is only
    evaluated inside the bracket, a start outside it included; the count returned is fn's number of calls."""
    lo, hi = torch.tensor([-1.0], dtype=torch.float64), torch.tensor([1.995], dtype=torch.float64)
    calls = []

    def recorded(x):
        calls.append(x.clone())
        return fn(x)

    x, iterations = solve_increasing(recorded, torch.tensor([target], dtype=torch.float64), lo, hi,
                                     start=None if start is None else torch.tensor([start], dtype=torch.float64))
    assert abs(float(x) - root) < 1e-9
    assert all(bool(((c >= lo) & (c <= hi)).all()) for c in calls)
    assert iterations == len(calls) <= 100


def test_the_solver_stays_in_its_bracket_where_the_function_jumps_over_the_target() -> None:
    """g(x) = x + 10·[x > 0] is increasing but never equals 5: the bracket closes on the jump at 0, and the closing
    Newton step, which would land 5 away (outside [-1, 1]), is not taken (a rounded function's steps, writ large)."""

    def jump(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x + 10.0 * (x > 0), torch.ones_like(x)

    x, _ = solve_increasing(jump, torch.tensor([5.0], dtype=torch.float64), torch.tensor([-1.0], dtype=torch.float64),
                            torch.tensor([1.0], dtype=torch.float64))
    assert abs(float(x)) < 1e-9


@pytest.mark.parametrize("start", [2.0, 3.0])
def test_an_infinite_slope_is_bisected_away_not_read_as_convergence(start):
    """At x = 2, g(x) = -√(2 - x) has g' = ∞: the Newton step there is 0, which passed for convergence at 2."""
    x, _ = solve_increasing(minus_root_of_two_less, torch.tensor([-0.1], dtype=torch.float64),
                            torch.tensor([-1.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64),
                            start=torch.tensor([start], dtype=torch.float64))
    assert abs(float(x) - 1.99) < 1e-9
