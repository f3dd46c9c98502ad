"""Activations with Lipschitz constant at most 1, so that Lip(g) ≤ Π_k ‖W̃_k‖₂ for the residual branch.

    LipSwish(x) = x · sigmoid(βx) / 1.1        (Chen et al. 2019, Residual Flows §4)

max_x d/dx [x · sigmoid(βx)] ≈ 1.0998 for every β > 0 (the curve only rescales with β), so dividing by
1.1 makes it 1-Lipschitz while its derivative, unlike ELU's or tanh's, does not saturate to 0 on one
side: Chen et al. found this keeps the Lipschitz bound from being wasted. ELU (α = 1), tanh and softplus
are 1-Lipschitz as they are. ReLU is refused: its Jacobian is piecewise constant, so the density of
x + g(x) would jump across the kinks and the log-det's gradient in x would vanish almost everywhere.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ctflows.core.counts import real_setting
from ctflows.errors import ConfigurationError


class LipSwish(nn.Module):
    """``x · sigmoid(βx) / 1.1`` elementwise, ``[B, ...] -> [B, ...]``, with one learnable β = softplus(ρ) > 0.

    β starts at 1 (ρ = log(e - 1)); softplus keeps it positive, where the 1.1 bound holds.
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        beta = real_setting("LipSwish", "beta", beta, "a number > 0, e.g. 1.0", lambda b: b > 0)
        # softplus⁻¹(β) = log(expm1(β)), written as β + log(1 - e^-β) so that a large β does not overflow.
        self.raw_beta = nn.Parameter(torch.tensor(beta + math.log(-math.expm1(-beta))))

    @property
    def beta(self) -> Tensor:
        return F.softplus(self.raw_beta)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.beta * x) / 1.1


_LIPSCHITZ_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "lipswish": LipSwish,
    "elu": nn.ELU,  # α = 1: slope 1 for x > 0, e^x < 1 below
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,  # slope sigmoid(x) < 1
}


def lipschitz_activation(name: str) -> nn.Module:
    """A 1-Lipschitz activation module by name: ``lipswish``, ``elu``, ``tanh`` or ``softplus``."""
    try:
        return _LIPSCHITZ_ACTIVATIONS[name]()
    except (KeyError, TypeError):  # TypeError: an unhashable name, such as a list
        raise ConfigurationError(
            f"activation {name!r} is not available for a Lipschitz-constrained residual branch; choose one of "
            f"{sorted(_LIPSCHITZ_ACTIVATIONS)} (each is at most 1-Lipschitz and smooth enough for the log-det)"
        ) from None
