from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctflows.core import DiagonalNormal, StandardNormal
from ctflows.errors import ConfigurationError, InputError
from ctflows.grid import integrate_2d


def test_standard_normal_matches_torch_distributions():
    z = torch.randn(50, 3, dtype=torch.float64)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(StandardNormal(3).log_prob(z), expected)


def test_diagonal_normal_log_prob_and_samples():
    base = DiagonalNormal(2).double()
    with torch.no_grad():
        base.loc.copy_(torch.tensor([1.0, -2.0]))
        base.log_scale.copy_(torch.tensor([0.5, -1.0]))
    z = torch.randn(40, 2, dtype=torch.float64)
    expected = torch.distributions.Normal(base.loc, base.log_scale.exp()).log_prob(z).sum(1)
    torch.testing.assert_close(base.log_prob(z), expected)
    x = base.sample(200000, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float64
    torch.testing.assert_close(x.mean(0), base.loc.detach(), atol=0.01, rtol=0)
    torch.testing.assert_close(x.std(0), base.log_scale.exp().detach(), atol=0.01, rtol=0)


@pytest.mark.parametrize("base", [StandardNormal((2, 3)), DiagonalNormal((2, 3))])
def test_event_shapes_and_dtype_follow_to(base):
    base = base.double()
    z = base.sample(5)
    assert z.shape == (5, 2, 3) and z.dtype == torch.float64
    assert base.log_prob(z).shape == (5,)
    # A 6-D standard normal's log-density at 0 is -3 log 2π.
    assert float(StandardNormal((2, 3)).log_prob(torch.zeros(1, 2, 3))) == pytest.approx(-3 * math.log(2 * math.pi))


@pytest.mark.parametrize("base", [StandardNormal(2), DiagonalNormal(2)])
def test_a_base_refuses_points_of_the_wrong_shape_or_type_and_bad_counts(base):
    # StandardNormal used to score a [4, 3] batch, or a [4] vector, as if it were [batch, 2].
    for z in (torch.zeros(4, 3), torch.zeros(4), torch.zeros(4, 2, 1)):
        with pytest.raises(InputError, match=r"points must have shape \[batch, 2\]"):
            base.log_prob(z)
    with pytest.raises(InputError, match="floating-point"):
        base.log_prob(torch.zeros(4, 2, dtype=torch.long))
    # A boolean (Python, NumPy or torch) or a tensor of several dims is not a count, though operator.index takes some.
    for n in (-1, 2.5, True, np.True_, torch.tensor(True), torch.tensor([3])):
        with pytest.raises(InputError, match="n must be a non-negative int"):
            base.sample(n)
    assert base.sample(0).shape == (0, 2) and torch.isneginf(base.log_prob(torch.full((1, 2), 1e30))).all()  # values are not checked
    with pytest.raises(ConfigurationError, match="each event dimension must be an int >= 1"):
        type(base)(0)


def test_diagonal_normal_on_a_matrix_event_counts_every_coordinate():
    # Event shape (2, 3): six independent normals, so the constant is -3 log 2π, not -(2/2) log 2π.
    base = DiagonalNormal((2, 3)).double()
    with torch.no_grad():
        base.loc.copy_(torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(2, 3))
        base.log_scale.copy_(torch.linspace(-0.5, 0.4, 6, dtype=torch.float64).reshape(2, 3))
    z = torch.randn(7, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.distributions.Normal(base.loc, base.log_scale.exp()).log_prob(z).sum((1, 2))
    torch.testing.assert_close(base.log_prob(z), expected)


def diagonal_normal(loc: list[float], scale: list[float]) -> DiagonalNormal:
    """A float64 DiagonalNormal with the given mean and standard deviations."""
    base = DiagonalNormal(len(loc)).double()
    with torch.no_grad():
        base.loc.copy_(torch.tensor(loc))
        base.log_scale.copy_(torch.tensor(scale).log())
    return base


@pytest.mark.parametrize(
    "base, bounds",
    [(StandardNormal(2).double(), (-8.0, 8.0, -8.0, 8.0)), (diagonal_normal([1.0, -2.0], [0.5, 1.5]), (-3.0, 5.0, -11.0, 7.0))],
    ids=["standard", "diagonal"],
)
def test_a_bases_density_integrates_to_one(base, bounds: tuple[float, float, float, float]) -> None:
    """Midpoint rule over a box holding all but ~1e-14 of the mass: the normalising constant is right."""
    with torch.no_grad():
        mass = integrate_2d(base.log_prob, bounds, n=400, dtype=torch.float64)
    assert mass == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("base", [StandardNormal(3).double(), diagonal_normal([1.0, -2.0, 0.3], [0.5, 1.5, 2.0])], ids=["standard", "diagonal"])
def test_samples_have_the_bases_mean_covariance_and_entropy(base) -> None:
    """200k draws: mean μ, covariance diag(σ²), and E[-log p(x)] = D/2 (1 + log 2π) + Σ log σ (the closed-form entropy)."""
    loc = getattr(base, "loc", torch.zeros(3, dtype=torch.float64)).detach()
    scale = getattr(base, "log_scale", torch.zeros(3, dtype=torch.float64)).detach().exp()
    with torch.no_grad():
        x = base.sample(200_000, generator=torch.Generator().manual_seed(0))
        entropy = float(-base.log_prob(x).mean())
    torch.testing.assert_close(x.mean(0), loc, atol=0.015, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), torch.diag(scale**2), atol=0.03, rtol=0.01)
    assert entropy == pytest.approx(1.5 * (1 + math.log(2 * math.pi)) + float(scale.log().sum()), abs=0.01)


def test_a_fresh_diagonal_normal_is_the_standard_normal() -> None:
    """μ = 0 and log σ = 0 at construction: same density, and the same draws from the same seed."""
    diagonal, standard = DiagonalNormal((2, 3)).double(), StandardNormal((2, 3)).double()
    z = torch.randn(5, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(diagonal.log_prob(z), standard.log_prob(z))
    draws = [b.sample(4, generator=torch.Generator().manual_seed(1)) for b in (diagonal, standard)]
    torch.testing.assert_close(draws[0], draws[1])


@pytest.mark.parametrize("base", [StandardNormal(2).double(), diagonal_normal([1.0, -2.0], [0.5, 1.5])], ids=["standard", "diagonal"])
def test_a_generator_makes_the_draws_reproducible_and_independent_of_the_global_seed(base) -> None:
    """Two draws from equally seeded generators agree, whatever the global RNG did in between."""
    torch.manual_seed(0)
    first = base.sample(6, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(1)
    second = base.sample(6, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, second, atol=0, rtol=0)


def test_diagonal_normal_samples_carry_the_pathwise_gradient() -> None:
    """x = μ + σ ε is reparameterised: the gradient of mean(Σ x²) estimates ∂E[Σ x²]/∂θ = (2μ, 2σ²) without bias."""
    base = diagonal_normal([1.0, -2.0], [0.5, 1.5])
    x = base.sample(200_000, generator=torch.Generator().manual_seed(0))
    (x**2).sum(1).mean().backward()
    loc, scale = base.loc.detach(), base.log_scale.detach().exp()
    torch.testing.assert_close(base.loc.grad, 2 * loc, atol=0.03, rtol=0)
    torch.testing.assert_close(base.log_scale.grad, 2 * scale**2, atol=0.08, rtol=0)


@pytest.mark.parametrize("make", [StandardNormal, DiagonalNormal])
def test_an_event_shape_may_be_given_as_a_torch_size_or_list(make) -> None:
    """``Base(x.shape[1:])`` is the natural call; a torch.Size and a list mean the same as the tuple."""
    for shape in (torch.Size([2, 3]), [2, 3]):
        base = make(shape)
        assert base.event_shape == (2, 3) and base.sample(4).shape == (4, 2, 3)


def test_a_standard_normal_adds_nothing_to_a_checkpoint() -> None:
    """Its device/dtype anchor is not state: the state dict is empty, so a model's checkpoint keys do not depend on it."""
    assert StandardNormal((2, 3)).state_dict() == {}


def test_a_scalar_event_shape_is_named_as_a_plain_batch_in_errors() -> None:
    """StandardNormal(()) holds one number per point: a batch [N], which the message writes as [batch] (not [batch, ])."""
    with pytest.raises(InputError, match=r"^StandardNormal: points must have shape \[batch\], got \[3, 2\]$"):
        StandardNormal(()).log_prob(torch.zeros(3, 2))
    assert StandardNormal(()).log_prob(torch.zeros(3)).shape == (3,)


@pytest.mark.parametrize("make", [StandardNormal, DiagonalNormal])
def test_a_scalar_event_base_refuses_a_point_without_a_batch_dimension(make) -> None:
    """A 0-d tensor has the scalar event's trailing shape () but no batch: refused, not summed into a [] log-density."""
    with pytest.raises(InputError, match=r"points must have shape \[batch\], got \[\]"):
        make(()).log_prob(torch.tensor(0.5))


def test_diagonal_normal_log_prob_gradients_are_the_score() -> None:
    """∂ log p / ∂μ = (z - μ) / σ² and ∂ log p / ∂ log σ = (z - μ)² / σ² - 1, summed over the batch."""
    base = diagonal_normal([1.0, -2.0], [0.5, 1.5])
    z = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    base.log_prob(z).sum().backward()
    loc, var = base.loc.detach(), base.log_scale.detach().exp() ** 2
    torch.testing.assert_close(base.loc.grad, ((z - loc) / var).sum(0))
    torch.testing.assert_close(base.log_scale.grad, ((z - loc) ** 2 / var - 1).sum(0))
