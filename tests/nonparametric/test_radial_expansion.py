"""RadialExpansion: exact log-det, numerical inverse to 1e-10, the invertibility range of β, and the
closed-form slope and curvature of the ascent step against autograd."""
import math

import pytest
import torch

from ctflows.errors import ConfigurationError
from ctflows.nonparametric import RadialExpansion, newton_beta, radial_derivatives, radial_forward, radial_step
from brute_force import brute_force_logdets


@pytest.mark.parametrize("beta", [-0.95, -0.3, 0.5, 2.0])
@pytest.mark.parametrize("d", [1, 2, 5])
def test_logdet_and_round_trip(beta, d):
    torch.manual_seed(d)
    layer = RadialExpansion(torch.randn(d, dtype=torch.float64), bandwidth=0.7, beta=beta)
    x = layer.centre.detach() + torch.randn(64, d, dtype=torch.float64)  # near, on and far from the kernel
    x[0] = layer.centre.detach()  # the centre itself is a fixed point
    y, logdet = layer(x)
    torch.testing.assert_close(logdet, brute_force_logdets(layer, x), atol=1e-10, rtol=0)
    x_back, logdet_inv = layer.inverse(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-10, rtol=0)


def test_beta_outside_invertible_range_is_refused():
    centre = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ConfigurationError, match="beta"):
        RadialExpansion(centre, 1.0, -1.0)  # folds every point onto the centre
    with pytest.raises(ConfigurationError, match="beta"):
        RadialExpansion(centre, 1.0, math.exp(1.5) / 2)  # ρ'(r) reaches 0 at r² = 3α²
    with pytest.raises(ConfigurationError, match="bandwidth"):
        RadialExpansion(centre, 0.0, 0.1)


def test_beta_at_the_ends_of_the_stored_range_is_refused() -> None:
    """β is stored as the logit of its place in the open interval 0.99 × (-1, e^{3/2}/2): either end would store an
    infinite logit, so the ends are refused like the values beyond them, and a β just inside is stored finitely."""
    centre = torch.zeros(2, dtype=torch.float64)
    for end, inward in ((-0.99, 1.0), (0.99 * math.exp(1.5) / 2, -1.0)):
        with pytest.raises(ConfigurationError, match="beta"):
            RadialExpansion(centre, 1.0, end)
        layer = RadialExpansion(centre, 1.0, end + inward * 1e-9)
        assert bool(torch.isfinite(layer.beta_logit))
        assert float(layer.beta.detach()) == pytest.approx(end + inward * 1e-9, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beta", [-0.1, 0.1])
def test_the_inverse_of_a_near_identity_map_takes_a_few_iterations(beta: float, dtype: torch.dtype) -> None:
    """For the fits' maps (|β| <= ε = 0.1 by default) the start r = ρ/(1 + β f(ρ)), one fixed-point step, is close to
    the root: the solve takes at most 6 iterations (measured 3 to 6; 8 to 11 from the bracket's midpoint)."""
    layer = RadialExpansion(torch.zeros(1, dtype=dtype), bandwidth=0.7, beta=beta)
    x = 1.5 * torch.randn(2000, 1, dtype=dtype, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x_back, _ = layer.inverse(layer(x)[0])
    assert layer.stats["iterations"] <= 6
    torch.testing.assert_close(x_back, x)


def test_slope_and_curvature_match_autograd():
    torch.manual_seed(0)
    x = torch.randn(300, 3, dtype=torch.float64) * 1.3 + 0.2
    centre, alpha = x[7].clone(), torch.tensor(0.8, dtype=torch.float64)

    def mean_log_likelihood(beta):
        y, logdet = radial_forward(x, centre, beta, alpha)
        return (logdet - 0.5 * y.square().sum(dim=1)).mean()

    g, h = radial_derivatives(x, centre, alpha)
    zero = torch.zeros((), dtype=torch.float64)
    g_auto = torch.autograd.functional.jacobian(mean_log_likelihood, zero)
    h_auto = torch.autograd.functional.hessian(mean_log_likelihood, zero)
    torch.testing.assert_close(g, g_auto, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(h, h_auto, atol=1e-12, rtol=1e-10)
    assert h < 0
    # Central finite differences agree too (a check on the autograd path, independent of the formula).
    eps = 1e-4
    fd = (mean_log_likelihood(zero + eps) - mean_log_likelihood(zero - eps)) / (2 * eps)
    torch.testing.assert_close(g, fd, atol=1e-7, rtol=0)


@pytest.mark.parametrize(("spread", "sign"), [(0.5, 1.0), (2.0, -1.0)], ids=["narrow-expands", "wide-contracts"])
def test_newton_step_is_clipped_and_raises_the_likelihood(spread: float, sign: float) -> None:
    """β* = -g/h, clipped to +ε when the data are too narrow for N(0, I) and to -ε when too wide."""
    torch.manual_seed(1)
    x = torch.randn(500, 2, dtype=torch.float64) * spread
    centre, alpha = torch.zeros(2, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    g, h = radial_derivatives(x, centre, alpha)
    unclipped = newton_beta(g, h, 10.0)
    torch.testing.assert_close(unclipped, -g / h)
    beta = newton_beta(g, h, 0.05)
    assert beta == sign * 0.05 and sign * unclipped > 0.05

    def mean_log_likelihood(b):
        y, logdet = radial_forward(x, centre, b, alpha)
        return float((logdet - 0.5 * y.square().sum(dim=1)).mean())

    assert mean_log_likelihood(beta) > mean_log_likelihood(torch.zeros((), dtype=torch.float64))
    # When every kernel weight underflows, the step is zero rather than 0/0.
    zero = torch.zeros((), dtype=torch.float64)
    assert newton_beta(zero, zero, 0.1) == 0


def test_state_dict_round_trip_and_float32():
    layer = RadialExpansion(torch.tensor([0.5, -0.2], dtype=torch.float64), 0.6, 0.4)
    copy = RadialExpansion(torch.zeros(2, dtype=torch.float64))
    copy.load_state_dict(layer.state_dict())
    x = torch.randn(10, 2, dtype=torch.float64)
    torch.testing.assert_close(copy(x)[0], layer(x)[0])
    small = layer.float()
    y, _ = small(x.float())
    torch.testing.assert_close(small.inverse(y)[0], x.float(), atol=1e-5, rtol=0)


def test_an_integer_centre_gives_a_layer_in_the_default_dtype() -> None:
    """An integer centre (a grid point) is read as a point of R^D: parameters in the default floating dtype, with
    the bandwidth and β as given (not truncated to integers), and the layer inverts."""
    layer = RadialExpansion(torch.tensor([0, 1]), bandwidth=0.5, beta=0.3)
    assert all(p.dtype == torch.get_default_dtype() for p in layer.parameters())
    assert float(layer.log_bandwidth.detach().exp()) == pytest.approx(0.5)
    assert float(layer.beta.detach()) == pytest.approx(0.3)
    x = torch.tensor([[0.2, 1.1], [-0.4, 0.5]])
    torch.testing.assert_close(layer.inverse(layer(x)[0])[0], x)


@pytest.mark.parametrize("beta", [-0.6, 1.5])
def test_the_inverse_is_differentiable_with_the_inverse_jacobian_and_parameter_gradients(beta):
    # x = f⁻¹(y): ∂x/∂y = (∂f/∂x)⁻¹ at x, and the parameter gradient of x must match finite differences
    # (the numerical root carries no gradient; the closing Newton step must put it back).
    torch.manual_seed(0)
    layer = RadialExpansion(torch.randn(3, dtype=torch.float64), bandwidth=0.8, beta=beta)
    y = layer.centre.detach() + 0.6 * torch.randn(4, 3, dtype=torch.float64)
    for yi in y:
        x = layer.inverse(yi.unsqueeze(0))[0].squeeze(0).detach()
        inv = torch.autograd.functional.jacobian(lambda r: layer.inverse(r.unsqueeze(0))[0].squeeze(0), yi)
        fwd = torch.autograd.functional.jacobian(lambda r: layer(r.unsqueeze(0))[0].squeeze(0), x)
        torch.testing.assert_close(inv, torch.linalg.inv(fwd), atol=1e-8, rtol=1e-8)
    (grad,) = torch.autograd.grad(layer.inverse(y)[0].sum(), [layer.log_bandwidth])
    h = 1e-6
    with torch.no_grad():
        layer.log_bandwidth += h
        plus = layer.inverse(y)[0].sum()
        layer.log_bandwidth -= 2 * h
        minus = layer.inverse(y)[0].sum()
        layer.log_bandwidth += h
    assert float(grad) == pytest.approx(float(plus - minus) / (2 * h), rel=1e-5, abs=1e-8)


def test_radial_step_bandwidth_is_the_distance_to_the_kth_nearest_point_counting_the_centre():
    """α is the distance from the drawn centre (a point of x) to its ``neighbours``-th nearest point of x, itself first."""
    x = torch.randn(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for seed in range(4):
        layer = radial_step(x, 5, 0.1, torch.Generator().manual_seed(seed))
        centre = layer.centre.detach()
        assert (x == centre).all(dim=1).any()
        distances = (x - centre).norm(dim=1).sort().values
        alpha = layer.log_bandwidth.detach().exp()
        assert float(alpha) == pytest.approx(float(distances[4]), rel=1e-12)
        # β is the clipped Newton step of the likelihood's quadratic model for that very centre and bandwidth.
        expected = newton_beta(*radial_derivatives(x, centre, alpha), 0.1)
        assert float(layer.beta.detach()) == pytest.approx(float(expected), rel=1e-9, abs=1e-15)


def test_radial_step_on_repeated_points_gives_a_positive_bandwidth():
    """Each point repeated more often than ``neighbours``: the k-th nearest distance is 0, yet the map is valid."""
    x = torch.tensor([[0.0, 1.0], [2.0, -1.0]], dtype=torch.float64).repeat(6, 1)
    layer = radial_step(x, 4, 0.1, torch.Generator().manual_seed(0))
    assert float(layer.log_bandwidth.detach().exp()) > 0
    y, logdet = layer(x)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()


def test_radial_step_draws_its_centre_uniformly_from_the_generator_alone():
    """Over many draws every point is a centre about equally often, and a seeded generator fixes the
    centres whatever torch's global random state."""
    x = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def centres(seed: int, draws: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        picked = [radial_step(x, 2, 0.1, generator).centre.detach() for _ in range(draws)]
        return torch.stack([(x == c).all(dim=1).nonzero().flatten() for c in picked]).flatten()

    counts = torch.bincount(centres(3, 400), minlength=8)
    assert int(counts.min()) >= 25 and int(counts.max()) <= 75, counts  # 50 expected each, sd 6.6
    torch.manual_seed(1)
    first = centres(5, 20)
    torch.manual_seed(2)
    assert torch.equal(centres(5, 20), first)


@pytest.mark.parametrize("logit", [-40.0, 40.0])
def test_every_beta_logit_gives_an_invertible_map(logit: float) -> None:
    """With the sigmoid saturated, β stays inside 0.99 × (-1, e^{3/2}/2): the radial slope ρ'(r) and the
    scale 1 + βf stay ≥ 0.01 at every radius (at the limits themselves they reach 0 at r = 0 or r = √3 α)."""
    layer = RadialExpansion(torch.zeros(1, dtype=torch.float64), bandwidth=1.0)
    with torch.no_grad():
        layer.beta_logit.fill_(logit)
    assert -1.0 < float(layer.beta.detach()) < math.exp(1.5) / 2
    r = torch.cat([torch.linspace(0, 6, 601, dtype=torch.float64), torch.tensor([math.sqrt(3.0)], dtype=torch.float64)])
    with torch.no_grad():
        y, logdet = layer(r.unsqueeze(1))  # in 1-D the log-det is log ρ'(r) alone, and ρ'(0) = 1 + β
        assert float(logdet.exp().min()) >= 0.01 - 1e-12
        torch.testing.assert_close(layer.inverse(y)[0], r.unsqueeze(1), atol=1e-10, rtol=0)
