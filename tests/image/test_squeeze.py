"""Squeeze moves each 2×2 patch into channels, invertibly, and refuses shapes it cannot squeeze."""
from __future__ import annotations

import pytest
import torch

from ctflows.errors import ConfigurationError, InputError
from ctflows.image import Squeeze, level_shapes


def test_squeeze_round_trip_and_patch_layout() -> None:
    x = torch.randn(3, 2, 4, 6, dtype=torch.float64)
    layer = Squeeze((2, 4, 6))
    z, logdet = layer(x)
    assert z.shape == (3, 8, 2, 3) and torch.equal(logdet, torch.zeros(3, dtype=torch.float64))
    # Output channel 4c + 2i + j at (h, w) is input channel c at pixel (2h + i, 2w + j).
    for c, i, j in [(0, 0, 0), (0, 1, 0), (1, 0, 1), (1, 1, 1)]:
        torch.testing.assert_close(z[:, 4 * c + 2 * i + j], x[:, c, i::2, j::2], atol=0, rtol=0)
    x_back, logdet_inverse = layer.inverse(z)
    assert torch.equal(x_back, x) and torch.equal(logdet_inverse, logdet)
    assert sorted(z.flatten().tolist()) == sorted(x.flatten().tolist())  # a permutation: volume preserved


def test_squeeze_checks_shapes() -> None:
    with pytest.raises(ConfigurationError, match="even"):
        Squeeze((1, 5, 4))
    layer = Squeeze((1, 4, 4))
    with pytest.raises(InputError, match=r"Squeeze: inverse input must have shape \[batch, 4, 2, 2\]"):
        layer.inverse(torch.randn(2, 1, 4, 4))
    with pytest.raises(ConfigurationError, match="even"):
        level_shapes((1, 8, 8), 4)  # (16, 1, 1) cannot be squeezed again
    assert level_shapes((1, 8, 8), 2) == [(4, 4, 4), (8, 2, 2)]
    with pytest.raises(InputError, match="takes no context"):
        layer(torch.randn(2, 1, 4, 4), torch.randn(2, 5))  # a context it would silently ignore
