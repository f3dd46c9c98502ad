"""The rational-quadratic spline: finite and invertible everywhere (bound edges, knots, huge inputs),
exact log-derivative, identity at zero parameters, and the coupling layer built on it (a new one is the identity:
tests/coupling/test_coupling_layers.py, with the other couplings)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ctflows.coupling import RQSplineCoupling, rational_quadratic_spline
from ctflows.coupling.rational_quadratic import knot_positions
from ctflows.errors import ConfigurationError

K, BOUND = 5, 2.0
# Values that stress the edge cases: the bound itself, just inside / outside it, huge, zero.
SPECIAL = [-1e6, 1e6, -BOUND, BOUND, -BOUND - 1e-12, BOUND + 1e-12, -BOUND + 1e-12, BOUND - 1e-12, 0.0]
values = st.one_of(st.sampled_from(SPECIAL), st.floats(-1e6, 1e6), st.floats(-2 * BOUND, 2 * BOUND))


def params(seed: int, n: int, scale: float, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, 3 * K - 1, generator=g, dtype=dtype) * scale
    return p[:, :K], p[:, K : 2 * K], p[:, 2 * K :]


def spline(x, p, inverse=False):
    return rational_quadratic_spline(x, *p, bound=BOUND, inverse=inverse)


@settings(max_examples=60, deadline=None)
@given(st.lists(values, min_size=1, max_size=16), st.integers(0, 2**31 - 1), st.sampled_from([0.0, 1.0, 5.0]))
def test_finite_and_invertible_everywhere(xs, seed, scale):
    x = torch.tensor(xs, dtype=torch.float64)
    p = params(seed, len(xs), scale)
    y, logdet = spline(x, p)
    x_back, logdet_inv = spline(y, p, inverse=True)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    torch.testing.assert_close(x_back, x, atol=1e-9, rtol=1e-12)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-7, rtol=0)
    outside = x.abs() > BOUND
    assert torch.equal(y[outside], x[outside]) and (logdet[outside] == 0).all()  # identity tails
    # the inverse applied directly to the same points is finite too (the inverse's own edge cases)
    assert all(torch.isfinite(t).all() for t in spline(x, p, inverse=True))


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exactly_at_the_knots(inverse, dtype):
    p = params(0, 1, 3.0, dtype)
    knots = knot_positions(p[1] if inverse else p[0], BOUND, 1e-3)[0]  # x-knots (or y-knots for the inverse)
    x = torch.cat([knots, knots.nextafter(knots + 1), knots.nextafter(knots - 1)])
    pp = tuple(t.expand(x.shape[0], -1) for t in p)
    y, logdet = spline(x, pp, inverse)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    back, _ = spline(y, pp, not inverse)
    torch.testing.assert_close(back, x, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)
    # knots map to knots, the ends to ±B exactly
    other = knot_positions(p[0] if inverse else p[1], BOUND, 1e-3)[0]
    torch.testing.assert_close(y[: K + 1], other, atol=1e-6 if dtype == torch.float32 else 1e-14, rtol=0)
    assert y[0] == -BOUND and y[K] == BOUND


def test_gradients_finite_at_edges_and_far_outside():
    x = torch.tensor([-1e6, -BOUND, 0.0, BOUND, 1e6], dtype=torch.float64, requires_grad=True)
    p = tuple(t.requires_grad_() for t in params(1, 5, 2.0))
    for inverse in (False, True):
        y, logdet = spline(x, p, inverse)
        grads = torch.autograd.grad((y.sum() + logdet.sum()), (x, *p))
        assert all(torch.isfinite(g).all() for g in grads)


def test_log_derivative_matches_autograd_and_is_monotone():
    x = torch.linspace(-BOUND - 1, BOUND + 1, 401, dtype=torch.float64, requires_grad=True)
    p = tuple(t.expand(401, -1) for t in params(2, 1, 3.0))
    y, logdet = spline(x, p)
    (dy,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(logdet, dy.log(), atol=1e-10, rtol=0)
    assert (y.diff() > 0).all()
    # the derivative is continuous: 1 at the bound, matching the tails
    _, ld_edges = spline(torch.tensor([-BOUND, BOUND], dtype=torch.float64), tuple(t[:2] for t in p))
    torch.testing.assert_close(ld_edges, torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)


def test_zero_parameters_give_the_identity():
    x = torch.linspace(-3 * BOUND, 3 * BOUND, 97, dtype=torch.float64)
    p = tuple(torch.zeros(97, n, dtype=torch.float64) for n in (K, K, K - 1))
    for inverse in (False, True):
        y, logdet = spline(x, p, inverse)
        torch.testing.assert_close(y, x, atol=1e-14, rtol=0)
        torch.testing.assert_close(logdet, torch.zeros_like(x), atol=1e-14, rtol=0)


@pytest.mark.parametrize(
    "kwargs", [{"bins": 1}, {"bins": 2.5}, {"bound": 0.0}, {"bins": 10, "min_width": 0.1}, {"min_derivative": 0.0}]
)
def test_bad_configuration_is_refused(kwargs):
    with pytest.raises(ConfigurationError, match="RQSplineCoupling"):
        RQSplineCoupling(2, **kwargs)


@pytest.mark.parametrize("dtype, far", [(torch.float64, 1e200), (torch.float32, 1e25)])
def test_gradients_stay_finite_for_inputs_whose_bin_coordinate_would_overflow(dtype, far):
    # Outside [-B, B] the spline is discarded by torch.where, but its branch is still differentiated: evaluated at
    # the raw x, ξ² overflows to inf there and inf/inf leaks a NaN gradient into x and the parameters. The spline
    # must be evaluated on inputs clamped to the bound (then the tails are exactly the identity: dy/dx = 1).
    x = torch.tensor([-far, -3 * BOUND, 0.5, 3 * BOUND, far], dtype=dtype, requires_grad=True)
    p = tuple(t.requires_grad_() for t in params(3, 5, 2.0, dtype))
    for inverse in (False, True):
        y, logdet = spline(x, p, inverse)
        grads = torch.autograd.grad(y.sum() + logdet.sum(), (x, *p))
        assert all(torch.isfinite(g).all() for g in grads), inverse
        outside = torch.tensor([True, True, False, True, True])
        assert torch.equal(grads[0][outside], torch.ones(4, dtype=dtype))


@pytest.mark.parametrize("inverse", [False, True])
def test_min_width_and_min_height_floor_their_own_axis(inverse):
    # Bins are at least 2B·min_width wide and 2B·min_height high, each floor on its own axis; the knots are where the
    # spline maps knots to knots. Different floors (and extreme parameters) tell a swapped floor apart.
    min_width, min_height = 0.01, 0.15
    g = torch.Generator().manual_seed(4)
    p = torch.randn(1, 3 * K - 1, generator=g, dtype=torch.float64) * 20.0
    xs = knot_positions(p[:, :K], BOUND, min_width)[0]
    ys = knot_positions(p[:, K : 2 * K], BOUND, min_height)[0]
    assert xs.diff().min() >= 2 * BOUND * min_width * (1 - 1e-12)
    assert ys.diff().min() >= 2 * BOUND * min_height * (1 - 1e-12)
    assert ys.diff().min() < 2 * BOUND * min_height * 1.01 and xs.diff().min() < 2 * BOUND * min_width * 1.01  # floors bite
    pp = tuple(t.expand(K + 1, -1) for t in (p[:, :K], p[:, K : 2 * K], p[:, 2 * K :]))
    y, _ = rational_quadratic_spline(ys if inverse else xs, *pp, bound=BOUND, inverse=inverse,
                                     min_width=min_width, min_height=min_height)
    torch.testing.assert_close(y, xs if inverse else ys, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inverse_stays_finite_and_in_its_bin_next_to_the_knots(dtype):
    # Extreme parameters give steep bins beside knot derivatives near the floor; at a y-knot and the floats next
    # to it the quadratic's discriminant and root are then mostly rounding, which must give neither a NaN (a
    # discriminant rounded below zero) nor a point past the bin (a root rounded outside [0, 1]). Inside such a bin,
    # where a y-ulp spans many x-ulps, the root also rounds past the bin's end (float32: by ~1e-4): clamped, it stays in.
    n = 256
    p = params(5, n, 10.0, dtype)
    xs, ys = (knot_positions(t, BOUND, 1e-3) for t in p[:2])
    up, down = ys.nextafter(ys + 1), ys.nextafter(ys - 1)
    fractions = torch.rand(n, K, 8, generator=torch.Generator().manual_seed(5), dtype=dtype)  # 8 points in each bin
    inner = (ys[:, :-1, None] + fractions * ys.diff(dim=-1)[..., None]).reshape(n, -1)
    y = torch.cat([ys, up, up.nextafter(up + 1), down, down.nextafter(down - 1), inner], dim=-1).clamp(-BOUND, BOUND)
    m = y.shape[-1]
    x, logdet = spline(y.reshape(-1), tuple(t.repeat_interleave(m, 0) for t in p), inverse=True)
    x = x.reshape(n, m)
    assert torch.isfinite(x).all() and torch.isfinite(logdet).all()
    k = (torch.searchsorted(ys, y, right=True) - 1).clamp(0, K - 1)  # the bin of each y
    assert (x >= xs.gather(-1, k)).all() and (x <= xs.gather(-1, k + 1)).all()


def bisected_inverse(y: torch.Tensor, p: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """g⁻¹(y) by bisection on the forward map over [-B, B], to the last bit of the dtype."""
    lo, hi = torch.full_like(y, -BOUND), torch.full_like(y, BOUND)
    for _ in range(round(-math.log2(torch.finfo(y.dtype).eps)) + 8):  # halvings of 2B down to below an ulp
        mid = (lo + hi) / 2
        below = spline(mid, p)[0] < y
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return lo


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_inverse_is_exact_at_the_bound_and_accurate_near_each_bins_top(dtype: torch.dtype) -> None:
    """At the top of a bin, solved from the bottom, b² and 4ac nearly cancel: x(B) came back hundreds of ulp short."""
    n, eps = 256, torch.finfo(dtype).eps
    p = params(5, n, 10.0, dtype)
    x, logdet = spline(torch.tensor([-BOUND, BOUND], dtype=dtype).repeat(n), tuple(t.repeat_interleave(2, 0) for t in p), inverse=True)
    assert (x.abs() == BOUND).all()
    torch.testing.assert_close(logdet, torch.zeros_like(logdet), atol=8 * eps, rtol=0)  # the end slopes are 1
    ys = knot_positions(p[1], BOUND, 1e-3)
    fractions = torch.tensor([1e-6, 1e-3, 0.1, 0.3], dtype=dtype)  # of each bin's height, below its top
    y = (ys[:, 1:, None] - fractions * ys.diff(dim=-1)[..., None]).reshape(-1)
    pp = tuple(t.repeat_interleave(K * len(fractions), 0) for t in p)
    x = spline(y, pp, inverse=True)[0]
    reference = bisected_inverse(y, pp)
    slope = spline(reference, pp)[1].exp()
    # In units of what the data allow: an ulp of x, or an ulp of y (of B) carried back through the slope.
    error = (x - reference).abs() / (eps * (reference.abs() + BOUND / slope))
    assert error.quantile(0.99) < 250, error.quantile(0.99)  # 110 in float64 and 39 in float32; 1700 and 840 before


def test_the_forward_map_stays_in_its_bin_and_monotone_next_to_the_knots():
    # y_k + h·r used to round up to 2 ulp past y_{k+1} at r = 1: g(B) came out above B, and above g(B + ulp) = B + ulp.
    n = 512
    p = params(9, n, 3.0)
    xs, ys = (knot_positions(t, BOUND, 1e-3) for t in p[:2])
    x = torch.cat([xs, xs.nextafter(xs + 1), xs.nextafter(xs - 1)], dim=-1)
    x = torch.cat([x, x[:, -1:].nextafter(x[:, -1:] + 1)], dim=-1).sort(dim=-1).values  # and B + ulp, in the tail
    m = x.shape[-1]
    y, _ = spline(x.reshape(-1), tuple(t.repeat_interleave(m, 0) for t in p))
    y = y.reshape(n, m)
    assert (y.diff(dim=-1) >= 0).all(), "not monotone"
    assert (y[:, 1] == -BOUND).all() and (y[:, -2] == BOUND).all()  # x = -B and x = B land on the end knots
    inside = (x >= -BOUND) & (x <= BOUND)
    k = (torch.searchsorted(xs, x, right=True) - 1).clamp(0, K - 1)  # the bin of each x
    assert ((y >= ys.gather(-1, k)) & (y <= ys.gather(-1, k + 1)) | ~inside).all()


def test_tails_are_exactly_the_identity_both_ways():
    # Outside [-B, B] both g and g⁻¹ give x back with log-det exactly 0. The spline branch, evaluated at the clamped
    # ±B, is discarded there: its inverse log-det at B is only zero up to rounding, so it must not leak into the tails.
    edge = torch.tensor([-BOUND, BOUND], dtype=torch.float64)
    x = torch.cat([edge.nextafter(2 * edge), edge * 1.5, edge * 1e6]).repeat(64)
    p = params(6, x.shape[0], 3.0)
    for inverse in (False, True):
        y, logdet = spline(x, p, inverse)
        assert torch.equal(y, x) and (logdet == 0).all(), inverse


def test_coupling_layer_uses_its_parameters_as_widths_heights_derivatives():
    # With the conditioner's output fixed to θ [features, 3K - 1], each transformed feature goes through the spline
    # with widths θ[:K], heights θ[K:2K], derivatives θ[2K:] and the layer's own floors, both ways; the log-det is
    # the sum over features. Distinct floors that bite (large θ) tell swapped or dropped settings apart.
    floors = {"min_width": 0.01, "min_height": 0.15, "min_derivative": 0.3}
    layer = RQSplineCoupling(4, bins=K, bound=BOUND, hidden=(8,), **floors).double()
    g = torch.Generator().manual_seed(7)
    theta = torch.randn(2, 3 * K - 1, generator=g, dtype=torch.float64) * 3
    with torch.no_grad():  # a zero last layer with bias θ outputs θ whatever its input
        layer.conditioner.net[-1].weight.zero_()
        layer.conditioner.net[-1].bias.copy_(theta.flatten())
    x = torch.randn(50, 4, generator=g, dtype=torch.float64) * BOUND
    t = layer.transformed
    p = tuple(theta[:, a:b].expand(50, -1, -1) for a, b in ((0, K), (K, 2 * K), (2 * K, 3 * K - 1)))
    for inverse in (False, True):
        z, logdet = layer.inverse(x) if inverse else layer(x)
        expected, expected_logdet = rational_quadratic_spline(x[:, t], *p, bound=BOUND, inverse=inverse, **floors)
        assert torch.equal(z[:, layer.identity], x[:, layer.identity])
        torch.testing.assert_close(z[:, t], expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(logdet, expected_logdet.sum(dim=1), atol=1e-12, rtol=0)


def test_bin_k_takes_its_size_from_parameter_k():
    # Bin k spans 2B (m + (1 - mK) softmax(raw)_k): the order of the parameters is the order of the bins, which a
    # conditioner (and a saved model) relies on; any consistent relabelling would still round-trip.
    raw = torch.randn(3, K, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 3
    m = 0.02
    sizes = knot_positions(raw, BOUND, m).diff(dim=-1)
    torch.testing.assert_close(sizes, 2 * BOUND * (m + (1 - m * K) * torch.softmax(raw, dim=-1)), atol=1e-14, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_knot_derivatives_are_floored_by_min_derivative_and_are_the_slopes_at_the_knots(dtype: torch.dtype) -> None:
    """δ = m + softplus(raw + log(e^{1-m} - 1)) inside and 1 at the ends, so raw → -∞ gives the floor m, raw = 0 gives 1
    and raw = 40 gives 40 + log(e^{1-m} - 1) + m; g' at each x-knot is its δ (g'(x) at ξ = 0 is δ_k), and the inverse's
    log-det at each y-knot is -log δ."""
    m = 0.05
    raw_derivatives = torch.tensor([[-60.0, 0.0, 40.0, -60.0]], dtype=dtype)
    expected = torch.tensor([[1.0, m, 1.0, 40 + math.log(math.expm1(1 - m)) + m, m, 1.0]], dtype=dtype)
    g = torch.Generator().manual_seed(10)
    widths, heights = (torch.randn(1, K, generator=g, dtype=dtype) * 2 for _ in range(2))
    xs, ys = knot_positions(widths, BOUND, 1e-3), knot_positions(heights, BOUND, 1e-3)
    p = tuple(t.expand(K + 1, -1) for t in (widths, heights, raw_derivatives))
    x = xs[0].clone().requires_grad_()
    y, logdet = rational_quadratic_spline(x, *p, bound=BOUND, min_derivative=m)
    (slope,) = torch.autograd.grad(y.sum(), x)
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(slope, expected[0], rtol=rtol, atol=0)
    torch.testing.assert_close(logdet, expected[0].log(), rtol=0, atol=rtol)
    _, logdet_inverse = rational_quadratic_spline(ys[0], *p, bound=BOUND, inverse=True, min_derivative=m)
    torch.testing.assert_close(logdet_inverse, -expected[0].log(), rtol=0, atol=10 * rtol)
