"""soft_clamp(s, b) = b·tanh(s / b): bounded by b, reaching it, slope 1 at 0, the identity to third order near 0, with
derivative sech²(s / b) everywhere; and the bound as the coupling layers use it."""
from __future__ import annotations

import pytest
import torch

from ctflows.coupling import AffineCoupling
from ctflows.networks import soft_clamp


@pytest.mark.parametrize("bound", [0.5, 3.0, 10.0])
def test_soft_clamp_is_bounded_by_b_reaches_it_and_has_slope_one_at_zero(bound):
    s = torch.tensor([-1e6, -2.0, -1e-3, 0.0, 1e-3, 2.0, 1e6], dtype=torch.float64, requires_grad=True)
    y = soft_clamp(s, bound)
    torch.testing.assert_close(y, bound * torch.tanh(s / bound), atol=1e-15, rtol=0)
    assert (y.abs() <= bound).all()
    assert y[0].item() == pytest.approx(-bound, rel=1e-12) and y[-1].item() == pytest.approx(bound, rel=1e-12)
    (slope,) = torch.autograd.grad(y.sum(), s)
    assert slope[3].item() == pytest.approx(1.0, abs=1e-12)  # the identity near 0: no slowing of early training


@pytest.mark.parametrize("bound", [0.5, 3.0, 10.0])
def test_soft_clamp_derivative_is_sech_squared_and_it_is_the_identity_to_third_order(bound: float) -> None:
    """d/ds b·tanh(s/b) = sech²(s/b) = 1 / cosh²(s/b) everywhere (not 1, as a straight-through clamp would give), and
    |soft_clamp(s) - s| <= |s|³ / (3b²) (the alternating Taylor series b·tanh(s/b) = s - s³/(3b²) + ...)."""
    s = torch.linspace(-8 * bound, 8 * bound, 161, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(soft_clamp(s, bound).sum(), s)
    torch.testing.assert_close(slope, 1 / torch.cosh(s.detach() / bound) ** 2, atol=1e-14, rtol=1e-12)
    small = torch.linspace(-0.3 * bound, 0.3 * bound, 61, dtype=torch.float64)
    assert ((soft_clamp(small, bound) - small).abs() <= small.abs() ** 3 / (3 * bound**2) + 1e-15).all()


def test_affine_coupling_log_scale_saturates_at_its_scale_bound():
    # A conditioner output far beyond the bound gives each transformed feature log-scale ≈ ±b, so the layer's
    # log-det is ±b per transformed feature, never more.
    layer = AffineCoupling(4, hidden=(8,), scale_bound=2.0).double()
    last = layer.conditioner.net[-1]
    x = torch.randn(5, 4, dtype=torch.float64)
    for sign in (1.0, -1.0):
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.tensor([sign * 1e4, 0.0, sign * 1e4, 0.0], dtype=torch.float64))  # (ŝ, t) per feature
        _, logdet = layer(x)
        torch.testing.assert_close(logdet, torch.full((5,), sign * 2 * 2.0, dtype=torch.float64), atol=1e-9, rtol=0)
        with torch.no_grad():
            last.bias.copy_(torch.tensor([sign * 1e-4, 0.0, sign * 1e-4, 0.0], dtype=torch.float64))
        _, logdet = layer(x)
        assert logdet[0].item() == pytest.approx(sign * 2e-4, rel=1e-6)  # ŝ passes through near 0
