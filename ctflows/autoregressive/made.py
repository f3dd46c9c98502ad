"""MADE: a masked MLP whose output for feature i sees only the features before i (Germain et al. 2015).

Each unit has a degree. Inputs have degrees 1..D (in a chosen order), context inputs degree 0, hidden
units degrees in [lo, D-1]; a hidden unit of degree m sees inputs of degree <= m, and an output for the
feature of degree d sees hidden units of degree < d. So output d depends only on inputs of degree < d,
and the network's Jacobian is strictly triangular in that order.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ctflows.core.counts import optional_count, positive_count, widths
from ctflows.errors import ConfigurationError
from ctflows.networks.mlp import activation_module


def check_order(owner: str, order: Sequence[int] | None, features: int) -> Tensor:
    """``order`` as a long tensor (``None``: the natural order) if it is a permutation of ``range(features)``.

    Else a ConfigurationError: a fractional entry would be truncated by ``int`` and pass, then fail as an index.
    """
    if order is None:
        return torch.arange(features)
    try:
        tensor = torch.as_tensor(order)
    except (TypeError, ValueError, RuntimeError):
        tensor = None
    integral = tensor is not None and tensor.dtype != torch.bool and not (tensor.is_floating_point() or tensor.is_complex())
    if not integral or tensor.dim() != 1 or not torch.equal(tensor.sort().values, torch.arange(features, dtype=tensor.dtype)):
        raise ConfigurationError(
            f"{owner}: order must be a permutation of range({features}), e.g. {list(range(features))[::-1]}, got {order!r}"
        )
    return tensor.long()


class MaskedLinear(nn.Linear):
    """``y = (W ⊙ M) x + b`` for a fixed 0/1 mask ``M [out, in]``; shapes ``[B, in] -> [B, out]``."""

    def __init__(self, mask: Tensor) -> None:
        # Another value than 0/1 would silently scale weights instead of cutting connections.
        if not isinstance(mask, Tensor) or mask.dim() != 2 or 0 in mask.shape or not bool(((mask == 0) | (mask == 1)).all()):
            got = f"shape {list(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
            raise ConfigurationError(f"MaskedLinear: mask must be a non-empty [out, in] tensor of 0s and 1s, got {got}")
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder ``[B, D] (+ context [B, c]) -> [B, D, P]``: P outputs per feature, autoregressive.

    Args:
        features: D.
        params_per_feature: P.
        hidden: hidden widths; use at least D - 1 units per layer (D with a context, whose hidden degrees start
            at 0) so every degree is present; with fewer, the last features lose some of their inputs.
        order: a permutation of ``range(D)``; feature ``order[k]`` gets degree k + 1, i.e. it is
            conditioned on ``order[:k]``. Default: the natural order.
        context_features: width of an optional context, seen by every hidden unit.
        activation: hidden activation name (as :class:`~ctflows.networks.MLP`).
        zero_last: start the output layer at zero (a flow layer built on it starts as the identity).
    """

    def __init__(
        self,
        features: int,
        params_per_feature: int,
        hidden: Sequence[int] = (64, 64),
        *,
        order: Sequence[int] | None = None,
        context_features: int | None = None,
        activation: str = "relu",
        zero_last: bool = True,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        features = positive_count(owner, "features", features)
        params_per_feature = positive_count(owner, "params_per_feature", params_per_feature)
        self.features, self.params_per_feature = features, params_per_feature
        self.context_features = optional_count(owner, "context_features", context_features)
        order_t = check_order(owner, order, features)
        degrees = torch.empty(features, dtype=torch.long)
        degrees[order_t] = torch.arange(1, features + 1)
        self.register_buffer("degrees", degrees)
        d_in = torch.cat([degrees, torch.zeros(context_features or 0, dtype=torch.long)])
        # Degree-0 hidden units see only the context, so even the first feature can be conditioned on it;
        # without context (and D > 1) they would only add constants, so degrees start at 1.
        lo = 0 if (context_features or features == 1) else 1
        layers: list[nn.Module] = []
        for width in widths(type(self).__name__, hidden):
            d_out = lo + torch.arange(width) % (features - lo)
            layers += [MaskedLinear((d_out[:, None] >= d_in[None, :]).long()), activation_module(activation, type(self).__name__)]
            d_in = d_out
        d_last = degrees.repeat_interleave(params_per_feature)  # output row i*P + p belongs to feature i
        last = MaskedLinear((d_last[:, None] > d_in[None, :]).long())
        if zero_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.context_features is not None:
            x = torch.cat([x, context], dim=-1)
        return self.net(x).reshape(x.shape[0], self.features, self.params_per_feature)


__all__ = ["MADE", "MaskedLinear"]
