"""Models whose continuous part is one CNF: the layers in front of it, and the CNF itself.

Flow matching regresses one CNF's velocity field and the density animation follows one CNF along t. Both
accept layers in front of that CNF (for instance a :class:`~ctflows.linear.Standardization` of data given
in raw units) and push the data through them first (``core.transform.forward_through``):

    log p(x) = log p_CNF(y) + log|det ∂y/∂x|,      y = front(x)
"""
from __future__ import annotations

from torch import nn

from ctflows.continuous.cnf import CNF
from ctflows.core.transform import Transform, flat_layers
from ctflows.errors import ConfigurationError


def split_at_cnf(flow: nn.Module, purpose: str) -> tuple[list[Transform], CNF]:
    """``(front, cnf)`` for a flow whose last layer is its only CNF; a ConfigurationError naming ``purpose`` otherwise."""
    layers = flat_layers(flow.transform)
    if not isinstance(layers[-1], CNF) or any(isinstance(layer, CNF) for layer in layers[:-1]):
        names = [type(layer).__name__ for layer in layers]
        raise ConfigurationError(
            f"{purpose} needs a model whose last layer is its single CNF (other layers may come before it), "
            f"but this model's layers are {names}"
        )
    return layers[:-1], layers[-1]
