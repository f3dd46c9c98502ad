"""The multilayer perceptron every conditioner and residual branch is built from.

    h_0 = [x, context],  h_{k+1} = act(W_k h_k + b_k),  out = W_L h_L + b_L
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ctflows.core.counts import optional_count, positive_count
from ctflows.core.counts import widths as widths_of
from ctflows.errors import ConfigurationError

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


def activation_module(name: str, owner: str = "MLP") -> nn.Module:
    """An activation module by name (``relu``, ``elu``, ``silu``, ``gelu``, ``tanh``, ``softplus``); else a
    :class:`ConfigurationError` naming ``owner``."""
    if not isinstance(name, str) or name not in _ACTIVATIONS:  # a list would otherwise fail as "unhashable"
        raise ConfigurationError(f"{owner}: unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def check_network(owner: str, hidden: object, activation: object) -> None:
    """Refuse bad hidden widths or an unknown activation under ``owner``, the layer the user built, before its inner
    network (``MLP``, ``MADE``) would under a name the user never called."""
    widths_of(owner, hidden)
    activation_module(activation, owner)


class MLP(nn.Module):
    """Fully connected network ``[B, in] (+ context [B, c]) -> [B, out]``.

    Args:
        in_features, out_features: input and output widths.
        hidden: widths of the hidden layers, e.g. ``(64, 64)``.
        context_features: width of an optional context concatenated to the input.
        activation: name of the hidden activation.
        zero_last: start the output layer at zero, so a coupling layer built on it starts as the identity
            (Dinh et al. 2017; Kingma & Dhariwal 2018 use the same trick for stable early training).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        *,
        context_features: int | None = None,
        activation: str = "relu",
        zero_last: bool = True,
    ) -> None:
        super().__init__()
        self.context_features = optional_count(type(self).__name__, "context_features", context_features)
        sizes = [positive_count(type(self).__name__, name, n) for name, n in (("in_features", in_features), ("out_features", out_features))]
        in_features, out_features = sizes
        widths = [in_features + (context_features or 0), *widths_of(type(self).__name__, hidden)]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), activation_module(activation, type(self).__name__)]
        last = nn.Linear(widths[-1], out_features)
        if zero_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.context_features is not None:
            x = torch.cat([x, context], dim=-1)
        return self.net(x)
