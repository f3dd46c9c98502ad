"""Linear layers conditioned on time (and context), the building blocks of velocity fields.

    concat:          y = W h + U c + b                       (h concatenated with c, written as two products)
    concat-squash:   y = (W h + b) ⊙ σ(G c + g) + H c         (Grathwohl et al., FFJORD, 2019)

``h`` is ``[B, in]``; ``c`` is the conditioning vector ``[1 or B, k]`` (time features, then context), so a
time-only condition is computed once per call and broadcast over the batch rather than concatenated.
``with_tangents`` also pushes tangent vectors ``u [B, K, in]`` through the layer (forward-mode
differentiation by hand): ``∂y/∂h · u``, which is how a field gives its Jacobian without double backward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ctflows.core.counts import positive_count


def _widths(owner: str, *named: tuple[str, object]) -> list[int]:
    """The layer's widths as ints >= 1: a ConfigurationError naming ``owner`` rather than torch's negative-dimension error."""
    return [positive_count(owner, name, value) for name, value in named]


class ConcatLinear(nn.Module):
    """``y = W h + U c + b``: a linear layer on ``[h, c]``. Shapes ``h [B, in], c [1|B, k] -> [B, out]``."""

    def __init__(self, in_features: int, out_features: int, cond_features: int) -> None:
        super().__init__()
        in_features, out_features, cond_features = _widths(
            type(self).__name__, ("in_features", in_features), ("out_features", out_features), ("cond_features", cond_features)
        )
        self.linear = nn.Linear(in_features, out_features)
        self.cond = nn.Linear(cond_features, out_features, bias=False)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        return self.linear(h) + self.cond(c)

    def with_tangents(self, h: Tensor, u: Tensor | None, c: Tensor) -> tuple[Tensor, Tensor]:
        """``(y [B, out], W u [B, K, out])``; ``u=None`` stands for the identity (then K = in)."""
        w = self.linear.weight
        du = w.t().unsqueeze(0) if u is None else F.linear(u, w)
        return self.forward(h, c), du

    @torch.no_grad()
    def scale_(self, factor: float) -> None:
        """Shrink the layer's output (used on the last layer so a new field is near zero)."""
        self.linear.weight.mul_(factor)
        self.linear.bias.zero_()
        self.cond.weight.mul_(factor)


class ConcatSquashLinear(nn.Module):
    """``y = (W h + b) ⊙ sigmoid(G c + g) + H c`` (FFJORD 2019). Shapes ``h [B, in], c [1|B, k] -> [B, out]``."""

    def __init__(self, in_features: int, out_features: int, cond_features: int) -> None:
        super().__init__()
        in_features, out_features, cond_features = _widths(
            type(self).__name__, ("in_features", in_features), ("out_features", out_features), ("cond_features", cond_features)
        )
        self.linear = nn.Linear(in_features, out_features)
        self.gate = nn.Linear(cond_features, out_features)
        self.shift = nn.Linear(cond_features, out_features, bias=False)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        return self.linear(h) * torch.sigmoid(self.gate(c)) + self.shift(c)

    def with_tangents(self, h: Tensor, u: Tensor | None, c: Tensor) -> tuple[Tensor, Tensor]:
        """``(y [B, out], (W u) ⊙ gate [B, K, out])``; ``u=None`` stands for the identity (then K = in)."""
        gate = torch.sigmoid(self.gate(c))
        w = self.linear.weight
        du = w.t().unsqueeze(0) if u is None else F.linear(u, w)
        return self.linear(h) * gate + self.shift(c), du * gate.unsqueeze(1)

    @torch.no_grad()
    def scale_(self, factor: float) -> None:
        """Shrink the layer's output (used on the last layer so a new field is near zero)."""
        self.linear.weight.mul_(factor)
        self.linear.bias.zero_()
        self.shift.weight.mul_(factor)
