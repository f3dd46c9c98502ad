import math

import pytest
import torch

from ctflows.core import DiagonalNormal, StandardNormal
from ctflows.errors import ConfigurationError, InputError


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
    for n in (-1, 2.5, True):
        with pytest.raises(InputError, match="n must be a whole number >= 0"):
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
