"""Asinh: the closed form far out, the overflow error, bad settings, and heavy-tailed data made fittable."""
import math

import numpy as np
import pytest
import torch

from ctflows.core import Chain, Flow
from ctflows.errors import ConfigurationError, InputError
from ctflows.linear import Asinh
from ctflows.nonparametric import fit_gaussianization


def test_far_out_the_map_is_a_logarithm_and_its_log_det_stays_finite():
    layer = Asinh(1, 2.0).double()
    x = torch.tensor([[1e-3], [1e30], [-1e300]], dtype=torch.float64)
    z, logdet = layer(x)
    # asinh(u) = sign(u) log(2|u|) + O(u^-2), and dz/dx = 1/sqrt(s² + x²) ≈ 1/|x|
    torch.testing.assert_close(z[1:, 0], torch.tensor([math.log(1e30), -math.log(1e300)], dtype=torch.float64), rtol=1e-15, atol=0)
    expected = torch.tensor([-math.log(math.hypot(2.0, v)) for v in x[:, 0].tolist()], dtype=torch.float64)
    torch.testing.assert_close(logdet, expected, rtol=1e-14, atol=0)
    back, inverse_logdet = layer.inverse(z)
    torch.testing.assert_close(back, x, rtol=1e-13, atol=0)
    torch.testing.assert_close(inverse_logdet, -logdet, rtol=1e-14, atol=0)


def test_with_a_scale_below_one_values_near_the_dtypes_largest_round_trip_with_the_right_log_det():
    """x / s and sinh(z) overflow float32 here though z and s sinh(z) do not: neither is formed where it would."""
    scale = 0.25
    layer = Asinh(2, scale)
    x = torch.tensor([[3e38, -0.1], [-3.4e38, 2.0]]).requires_grad_(True)
    z, logdet = layer(x)
    exact = [[math.asinh(v / scale) for v in row] for row in x.tolist()]
    torch.testing.assert_close(z, torch.tensor(exact), rtol=1e-6, atol=0)
    expected = [-sum(math.log(math.hypot(scale, v)) for v in row) for row in x.tolist()]  # dz/dx = 1/sqrt(s² + x²)
    torch.testing.assert_close(logdet, torch.tensor(expected), rtol=1e-6, atol=0)
    (grad,) = torch.autograd.grad(z.sum(), x)
    torch.testing.assert_close(grad, torch.tensor([[1 / math.hypot(scale, v) for v in row] for row in x.tolist()]), rtol=1e-6, atol=0)
    back, inverse_logdet = layer.inverse(z)
    torch.testing.assert_close(back, x.detach(), rtol=1e-5, atol=0)  # sinh's condition number at z ≈ 90 is 90
    torch.testing.assert_close(inverse_logdet, -logdet.detach(), rtol=1e-6, atol=0)


def test_the_inverses_gradient_far_out_is_s_cosh_z_not_nan():
    """dx/dz = s cosh(z): finite at |z| ≈ 90 in float32 with s < 1 though sinh(z) alone overflows there, so the near
    branch (s sinh z, discarded) must not be differentiated at such z, or its inf · 0 leaks a NaN into the gradient."""
    scale = 0.25
    layer = Asinh(2, scale)
    z = torch.tensor([[90.5, -0.3], [-90.0, 1.5]]).requires_grad_(True)
    x, _ = layer.inverse(z)
    (grad,) = torch.autograd.grad(x.sum(), z)
    expected = [[scale * math.cosh(v) for v in row] for row in z.tolist()]
    torch.testing.assert_close(grad, torch.tensor(expected), rtol=1e-5, atol=0)


def test_an_inverse_that_overflows_the_dtype_is_an_error_not_inf():
    layer = Asinh(2)
    with pytest.raises(InputError, match=r"Asinh: inverse input reaches \|z\| = 100, where s sinh\(z\) overflows torch.float32"):
        layer.inverse(torch.tensor([[0.0, 100.0]]))
    # The size reported is the largest |z|, here that of a negative value below -89 (where sinh(z) = -inf).
    with pytest.raises(InputError, match=r"reaches \|z\| = 120, where"):
        layer.inverse(torch.tensor([[3.0, 1.0], [-120.0, 0.0]]))


def test_a_scale_of_one_number_is_a_buffer_of_its_own_that_checkpoints_round_trip():
    """A scalar scale is stored as D numbers of its own (not a stride-0 view), so a saved state loads into it."""
    source = Asinh(3, torch.tensor([0.5, 1.0, 2.0]))
    layer = Asinh(3, 2.0)
    layer.load_state_dict(source.state_dict())
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(layer(x)[0], source(x)[0])
    assert layer.scale.tolist() == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    "scale",
    [0.0, -1.0, math.inf, math.nan, [1.0, 2.0, 3.0], "1", True, np.bool_(True), torch.tensor([True, True]), 1 + 0j,
     torch.tensor([1 + 1j, 2 + 0j])],
)
def test_a_scale_that_is_not_positive_finite_and_one_per_feature_is_refused(scale):
    """Booleans are refused as every real setting's are (True read as 1.0 is a flag where a number was meant)."""
    with pytest.raises(ConfigurationError, match="Asinh: scale must be"):
        Asinh(2, scale)


@pytest.mark.parametrize("scale", [2, np.float64(2.0), np.int64(2), torch.tensor(2.0, dtype=torch.float64), np.array([2.0, 2.0])])
def test_a_scale_given_as_a_numpy_number_or_a_tensor_is_taken(scale):
    assert Asinh(2, scale).scale.tolist() == [2.0, 2.0]


def test_heavy_tailed_data_fit_after_asinh_where_they_did_not_before():
    # docs/nonparametric.md, "Heavy tails", at a test's size: Cauchy data through Asinh, then Gaussianization.
    torch.manual_seed(0)
    cauchy = torch.distributions.Cauchy(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    train, test = cauchy.sample((2000, 2)), cauchy.sample((2000, 2))
    asinh = Asinh(2).double()
    fitted = fit_gaussianization(asinh(train)[0], max_steps=30, generator=torch.Generator().manual_seed(0))
    flow = Flow(Chain(asinh, fitted.transform), fitted.base)
    raw = fit_gaussianization(train, max_steps=30, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        truth = cauchy.log_prob(test).sum(1).mean()
        assert abs(float(flow.log_prob(test).mean() - truth)) < 0.15
        assert float(raw.log_prob(test).mean() - truth) < -100  # the Gaussian tails' failure this fixes
        samples = flow.sample(4000, generator=torch.Generator().manual_seed(1))
    # Samples keep heavy tails: P(|x_j| > 50) = 2 atan(1/50)/π ≈ 0.0127 per Cauchy coordinate, about 102 of the
    # 8,000 coordinates; this model gives 194.
    beyond = int((samples.abs() > 50).sum())
    assert 50 < beyond < 400, beyond
