"""The convolutional CNF field: its concat-squash layer's closed form, the stack of layers and activations with the
embedded time, one time per sample, and a zero init_scale giving v ≡ 0."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ctflows.continuous import FourierTime
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


ACTIVATIONS = {"tanh": torch.tanh, "silu": F.silu, "softplus": F.softplus}


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_conv_field_is_its_concat_squash_layers_with_the_activation_between(activation: str) -> None:
    """v(t, x) = L_K(act(… act(L_0(x, c)) …), c), c = embedding(t): one layer per width in (C, *hidden, C), the named
    activation after every layer but the last, each layer given the embedded time (here 2 Fourier frequencies)."""
    torch.manual_seed(0)
    shape, hidden, embedding = (2, 4, 4), (5, 3), FourierTime(2)
    field = ConvTimeField(shape, hidden, activation=activation, time_embedding=embedding, init_scale=1.0).double()
    widths = [(layer.conv.in_channels, layer.conv.out_channels) for layer in field.layers]
    assert widths == [(2, 5), (5, 3), (3, 2)]
    x = torch.randn(3, 32, dtype=torch.float64)
    for t in (0.0, 0.7):
        c = embedding(torch.tensor(t, dtype=torch.float64))
        h = x.reshape(3, *shape)
        for layer in field.layers[:-1]:
            h = ACTIVATIONS[activation](layer(h, c))
        expected = field.layers[-1](h, c).reshape(3, 32)
        torch.testing.assert_close(field(torch.tensor(t, dtype=torch.float64), x), expected, atol=1e-12, rtol=0)


def test_conv_field_with_one_time_per_sample_matches_each_sample_alone() -> None:
    """Per-sample times t [B] (an embedding row each) give row i the velocity of x_i at its own t_i, which differs
    from the velocity at another time."""
    torch.manual_seed(0)
    field = ConvTimeField((1, 4, 4), (6,), activation="tanh", init_scale=1.0).double()
    with torch.no_grad():
        for layer in field.layers:
            layer.gate.weight.mul_(5.0)  # a gate that depends clearly on t
    x = torch.randn(4, 16, dtype=torch.float64)
    t = torch.tensor([0.0, 0.3, 0.6, 1.0], dtype=torch.float64)
    v = field(t, x)
    for i in range(4):
        torch.testing.assert_close(v[i : i + 1], field(t[i], x[i : i + 1]), atol=1e-12, rtol=0)
    assert not torch.allclose(field(t[0], x), field(t[3], x))
