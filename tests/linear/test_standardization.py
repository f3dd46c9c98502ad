"""Standardization: fitted from data it standardises them, its parameters are fixed, bad data are refused."""
import math

import pytest
import torch

import ctflows
from ctflows.errors import DataError, InputError


def test_from_data_standardises_and_its_logdet_is_the_volume_change():
    x = torch.randn(500, 3, dtype=torch.float64) * torch.tensor([0.01, 1.0, 300.0], dtype=torch.float64) + 7
    layer = ctflows.Standardization.from_data(x)
    z, logdet = layer(x)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(z.std(dim=0), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(logdet, torch.full((500,), -float(x.std(dim=0).log().sum()), dtype=torch.float64))
    assert list(layer.parameters()) == []  # nothing for an optimizer to move
    assert {name for name, _ in layer.named_buffers()} == {"loc", "scale"}


def test_a_flow_behind_it_has_the_density_of_an_affine_change_of_variables():
    x = torch.randn(200, 2, dtype=torch.float64)
    a, c = torch.tensor([50.0, 0.2], dtype=torch.float64), torch.tensor([300.0, -4.0], dtype=torch.float64)
    layer = ctflows.Standardization(c, a)
    flow = ctflows.Flow([layer], ctflows.StandardNormal(2)).double()
    y = a * x + c
    expected = ctflows.StandardNormal(2).double().log_prob(x) - math.log(50.0 * 0.2)
    torch.testing.assert_close(flow.log_prob(y), expected)


def test_bad_data_get_a_message_that_says_what_to_change():
    x = torch.randn(100, 3)
    with pytest.raises(DataError, match=r"feature\(s\) \[1\] are constant"):
        ctflows.Standardization.from_data(torch.cat([x[:, :1], torch.full((100, 1), 2.5), x[:, 2:]], dim=1))
    with pytest.raises(DataError, match="NaN or Inf"):
        ctflows.Standardization.from_data(torch.where(torch.arange(100).unsqueeze(1) == 7, float("nan"), x))
    with pytest.raises(DataError, match="N >= 2"):
        ctflows.Standardization.from_data(x[:1])
    with pytest.raises(DataError, match="positive"):
        ctflows.Standardization(torch.zeros(3), torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(DataError, match=r"\[D\]"):
        ctflows.Standardization(torch.zeros(3), torch.ones(2))


def test_the_layer_keeps_its_own_copies_of_loc_and_scale():
    """Changing the tensors it was built from afterwards does not change the fixed map."""
    loc, scale = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 4.0])
    layer = ctflows.Standardization(loc, scale)
    x = torch.tensor([[2.0, 2.0]])
    before = layer(x)
    loc.add_(10.0)
    scale.mul_(3.0)
    after = layer(x)
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    assert after[0].tolist() == [[2.0, 1.0]]


def test_min_scale_zero_still_refuses_a_constant_feature_by_name():
    """A feature at exactly min_scale × the largest spread is flagged: with min_scale = 0, a constant column still is."""
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[:, 0] = 3.0
    with pytest.raises(DataError, match=r"feature\(s\) \[0\] are constant"):
        ctflows.Standardization.from_data(x, min_scale=0.0)


@pytest.mark.parametrize("x", [torch.arange(10).reshape(5, 2), torch.randn(5), torch.randn(5, 2, 1)], ids=["integer", "1-d", "3-d"])
def test_from_data_wants_a_floating_matrix(x: torch.Tensor):
    with pytest.raises(DataError, match=r"need a floating \[N, D\] tensor with N >= 2, got torch\.\w+ \[5"):
        ctflows.Standardization.from_data(x)


def test_integer_statistics_become_floating_buffers_that_follow_the_model_dtype():
    """loc = [0, 1], scale = [1, 2] as ints: float buffers that .double() moves, and a log-det in the input's dtype."""
    layer = ctflows.Standardization([0, 1], [1, 2]).double()
    assert layer.loc.dtype == layer.scale.dtype == torch.float64
    x = torch.tensor([[1.0, 5.0]], dtype=torch.float64)
    z, logdet = layer(x)
    assert z.tolist() == [[1.0, 2.0]] and logdet.dtype == torch.float64
    torch.testing.assert_close(logdet, torch.tensor([-math.log(2.0)], dtype=torch.float64), atol=1e-15, rtol=0)
    with pytest.raises(InputError, match="has dtype torch.float32 but the layer's parameters are torch.float64"):
        layer(x.float())


@pytest.mark.parametrize("loc, scale", [(torch.tensor([True]), torch.tensor([True])), (torch.tensor([0j]), torch.tensor([1 + 0j]))], ids=["bool", "complex"])
def test_boolean_or_complex_statistics_are_refused(loc: torch.Tensor, scale: torch.Tensor):
    """They used to reach torch: bool buffers failed at the first subtraction, complex ones at the positivity check."""
    with pytest.raises(DataError, match=r"^Standardization: loc and scale must be real numbers, got torch\.\w+"):
        ctflows.Standardization(loc, scale)
