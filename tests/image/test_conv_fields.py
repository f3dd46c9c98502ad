"""The convolutional CNF field's concat-squash layer: its closed form, and a zero init_scale giving v ≡ 0."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ctflows.image import ConcatSquashConv2d, ConvTimeField


def test_concat_squash_conv_is_conv_times_sigmoid_gate_plus_shift() -> None:
    # y = conv(h) ⊙ sigmoid(G c + g) + H c: the gate lies in (0, 1) and is broadcast over the pixels.
    torch.manual_seed(0)
    layer = ConcatSquashConv2d(2, 3, 4).double()
    with torch.no_grad():
        layer.gate.weight.mul_(5.0)  # gates far from 1/2 on both sides
    h = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    c = torch.randn(5, 4, dtype=torch.float64)
    conv = F.conv2d(h, layer.conv.weight, layer.conv.bias, padding=1)
    gate = torch.sigmoid(c @ layer.gate.weight.T + layer.gate.bias)
    expected = conv * gate[:, :, None, None] + (c @ layer.shift.weight.T)[:, :, None, None]
    torch.testing.assert_close(layer(h, c), expected, atol=1e-12, rtol=0)


def test_zero_init_scale_gives_a_zero_field() -> None:
    # init_scale = 0 must start the CNF at the identity: the last layer's conv weight, bias and shift all vanish.
    torch.manual_seed(0)
    field = ConvTimeField((2, 4, 4), (8,), init_scale=0.0).double()
    x = torch.randn(3, 32, dtype=torch.float64)
    for t in (0.0, 0.3, 1.0):
        assert torch.equal(field(torch.tensor(t, dtype=torch.float64), x), torch.zeros_like(x))
