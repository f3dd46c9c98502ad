"""The shared MLP: gradients reach the context, so a learnable context encoder in front of a flow can be trained."""
from __future__ import annotations

import torch

from ctflows.coupling import AffineCoupling
from ctflows.networks import MLP


def test_mlp_is_differentiable_in_its_context():
    torch.manual_seed(0)
    net = MLP(3, 4, (8,), context_features=2, activation="tanh", zero_last=False).double()
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    context = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(net, (x, context))


def test_conditional_coupling_log_likelihood_gradient_reaches_the_context():
    torch.manual_seed(0)
    layer = AffineCoupling(4, hidden=(8,), context_features=2).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(5, 4, dtype=torch.float64)
    context = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: layer(x, c), (context,))


def test_hidden_layers_are_nonlinear():
    # Without its activations the MLP would be affine, f(a) + f(b) = f(a + b) + f(0), and every coupling and
    # field built on it would be a linear flow; only the argument checks noticed their removal before.
    for activation in ("relu", "elu", "silu", "gelu", "tanh", "softplus"):
        torch.manual_seed(0)
        net = MLP(3, 2, (16, 16), activation=activation, zero_last=False).double()
        a, b = (torch.randn(8, 3, dtype=torch.float64) for _ in range(2))
        gap = net(a) + net(b) - net(a + b) - net(torch.zeros(1, 3, dtype=torch.float64))
        assert gap.abs().max() > 1e-3, activation
