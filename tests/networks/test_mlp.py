"""The shared MLP: the layout and activations asked for, a zero output layer where documented, the context
concatenated after the input, its sizes checked; gradients reach the context, so a learnable context encoder in
front of a flow can be trained."""
from __future__ import annotations

import math
from typing import Callable

import pytest
import torch
from torch import Tensor, nn

from ctflows.coupling import AffineCoupling
from ctflows.errors import ConfigurationError
from ctflows.networks import MLP, activation_module

# Each activation's textbook formula, written out independently of torch's modules.
REFERENCE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "silu": lambda x: x / (1 + torch.exp(-x)),
    "gelu": lambda x: x * 0.5 * (1 + torch.erf(x / math.sqrt(2))),
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "softplus": lambda x: torch.log(1 + torch.exp(x)),
}


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


@pytest.mark.parametrize("name", sorted(REFERENCE_ACTIVATIONS))
def test_each_activation_name_gives_the_function_it_names(name: str) -> None:
    """``activation_module(name)`` computes the textbook function of that name, not another smooth nonlinearity."""
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    torch.testing.assert_close(activation_module(name)(x), REFERENCE_ACTIVATIONS[name](x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("bad", ["swish", "ReLU", ["relu"], None])
def test_unknown_or_unhashable_activation_names_are_refused_with_the_choices(bad: object) -> None:
    """A wrong name (even an unhashable one) is a ConfigurationError listing the names, also when given to the MLP."""
    with pytest.raises(ConfigurationError, match=r"unknown activation .*choose one of \['elu', 'gelu', 'relu'"):
        activation_module(bad)
    with pytest.raises(ConfigurationError, match="unknown activation"):
        MLP(2, 2, (4,), activation=bad)


def test_layer_widths_and_activations_are_those_asked_for() -> None:
    """[in + context] -> hidden... -> out, with the named activation after every hidden layer and none after the last."""
    net = MLP(3, 5, (7, 4), context_features=2, activation="tanh")
    kinds = [type(m) for m in net.net]
    assert kinds == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]
    assert [(m.in_features, m.out_features) for m in net.net[::2]] == [(3 + 2, 7), (7, 4), (4, 5)]
    assert [type(m) for m in MLP(3, 5, ()).net] == [nn.Linear]  # no hidden layers: one affine map


def test_zero_last_starts_the_output_at_exactly_zero_and_only_the_output_layer() -> None:
    """By default the output layer (weights and bias) is zero, so the output is 0 for every input while the hidden
    layers keep their random weights (training can move them); with ``zero_last=False`` it is not."""
    torch.manual_seed(0)
    x, context = torch.randn(6, 3), torch.randn(6, 2)
    net = MLP(3, 4, (8, 8), context_features=2)
    assert torch.equal(net(x, context), torch.zeros(6, 4))
    assert all(torch.equal(p, torch.zeros_like(p)) for p in net.net[-1].parameters())
    assert all(p.abs().max() > 0 for m in net.net[:-1] for p in m.parameters())
    assert net(x, context).abs().max() == 0 < MLP(3, 4, (8, 8), context_features=2, zero_last=False)(x, context).abs().max()


def test_context_is_concatenated_after_the_input() -> None:
    """h_0 = [x, context]: with no hidden layer the MLP is W [x; c] + b, the first columns of W acting on x."""
    torch.manual_seed(0)
    net = MLP(3, 2, (), context_features=2, zero_last=False).double()
    x, context = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    weight, bias = net.net[0].weight, net.net[0].bias
    torch.testing.assert_close(net(x, context), x @ weight[:, :3].T + context @ weight[:, 3:].T + bias)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"in_features": 0}, "in_features"), ({"out_features": -1}, "out_features"), ({"out_features": 2.0}, "out_features"),
     ({"context_features": 0}, "context_features"), ({"hidden": (8, 0)}, "each hidden width")],
)
def test_bad_sizes_are_refused_naming_the_mlp_and_the_argument(kwargs: dict[str, object], name: str) -> None:
    """Each size is checked under its own name (a context width of 0 would build a net that cannot take a context)."""
    arguments = {"in_features": 3, "out_features": 2, "hidden": (8,)} | kwargs
    with pytest.raises(ConfigurationError, match=f"^MLP: {name} must be an int >= 1"):
        MLP(**arguments)
