"""ActNorm's data-dependent initialisation: from the first batch that has a spread, once."""
import pytest
import torch

from ctflows.errors import InputError
from ctflows.linear import ActNorm


def test_a_first_batch_of_one_does_not_lock_in_and_the_next_batch_initialises():
    layer = ActNorm(2).train()
    point = torch.tensor([[5.0, -3.0]])
    z, logdet = layer(point)
    assert not bool(layer.initialized) and torch.equal(z, point) and float(logdet.detach().abs().sum()) == 0  # identity so far
    batch = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0)) * 10 + 100
    z, _ = layer(batch)
    assert bool(layer.initialized)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(dim=0), torch.ones(2), atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="at least 2 points"):
        ActNorm(2).initialize(point)


def test_a_constant_feature_is_refused_not_scaled_by_a_million():
    # Its scale would be 1/eps: a point 0.01 off the constant would get a log-density near -5e19.
    layer = ActNorm(2).train()
    with pytest.raises(InputError, match="feature 1 is constant.*jitter"):
        layer(torch.tensor([[0.0, 2.0], [1.0, 2.0], [3.0, 2.0]]))
    assert not bool(layer.initialized)
