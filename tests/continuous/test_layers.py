"""The conditioned linear layers compute the formulas of their docstrings, written out here from their weights.

    concat:          y = W h + U c + b
    concat-squash:   y = (W h + b) ⊙ σ(G c + g) + H c
"""
from __future__ import annotations

import pytest
import torch

from ctflows.continuous.layers import ConcatLinear, ConcatSquashLinear

F64 = torch.float64


def inputs(batch_c: int):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(5, 4, dtype=F64, generator=g)
    c = torch.randn(batch_c, 3, dtype=F64, generator=g)
    u = torch.randn(5, 2, 4, dtype=F64, generator=g)
    return h, c, u


def randomised(layer: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))  # biases far from zero too
    return layer


@pytest.mark.parametrize("batch_c", [1, 5])  # a time-only condition broadcast, or one row per input
def test_concat_squash_is_the_ffjord_formula(batch_c):
    layer = randomised(ConcatSquashLinear(4, 6, 3).to(F64))
    assert {name for name, _ in layer.named_parameters()} == {"linear.weight", "linear.bias", "gate.weight", "gate.bias", "shift.weight"}
    h, c, u = inputs(batch_c)
    W, b = layer.linear.weight, layer.linear.bias
    G, g, H = layer.gate.weight, layer.gate.bias, layer.shift.weight
    gate = 1.0 / (1.0 + torch.exp(-(c @ G.T + g)))
    expected = (h @ W.T + b) * gate + c @ H.T
    torch.testing.assert_close(layer(h, c), expected, atol=1e-12, rtol=0)
    y, du = layer.with_tangents(h, u, c)
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(du, (u @ W.T) * gate.unsqueeze(1), atol=1e-12, rtol=0)
    _, jac = layer.with_tangents(h, None, c)  # [B, in, out]: row k is ∂y/∂h_k
    torch.testing.assert_close(jac.expand(5, 4, 6), (W.T.unsqueeze(0) * gate.unsqueeze(1)).expand(5, 4, 6), atol=1e-12, rtol=0)


@pytest.mark.parametrize("batch_c", [1, 5])
def test_concat_is_a_linear_layer_on_h_and_c(batch_c):
    layer = randomised(ConcatLinear(4, 6, 3).to(F64))
    assert {name for name, _ in layer.named_parameters()} == {"linear.weight", "linear.bias", "cond.weight"}
    h, c, u = inputs(batch_c)
    W, b, U = layer.linear.weight, layer.linear.bias, layer.cond.weight
    expected = h @ W.T + c @ U.T + b
    torch.testing.assert_close(layer(h, c), expected, atol=1e-12, rtol=0)
    y, du = layer.with_tangents(h, u, c)
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(du, u @ W.T, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cls", [ConcatLinear, ConcatSquashLinear])
def test_scale_shrinks_the_output_to_factor_times_its_h_and_c_parts(cls):
    """After scale_(f) the layer is f times its former self without the (former) output bias."""
    layer = randomised(cls(4, 6, 3).to(F64))
    h, c, _ = inputs(5)
    if cls is ConcatLinear:
        before = h @ layer.linear.weight.T + c @ layer.cond.weight.T
    else:
        gate = torch.sigmoid(layer.gate(c))
        before = (h @ layer.linear.weight.T) * gate + layer.shift(c)
    before = before.detach()
    layer.scale_(0.01)
    torch.testing.assert_close(layer(h, c), 0.01 * before, atol=1e-12, rtol=0)
