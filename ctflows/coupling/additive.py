"""NICE additive coupling (Dinh et al. 2015): τ(x_B) = x_B + t(x_A), volume preserving (log|det J| = 0)."""
from __future__ import annotations

from torch import Tensor

from ctflows.core.transform import zeros_logdet
from ctflows.coupling.base import Coupling


class AdditiveCoupling(Coupling):
    """``z_B = x_B + t(x_A)``; shapes ``[B, D] -> [B, D]``, log-det zero. Arguments as :class:`Coupling`."""

    params_per_feature = 1

    def elementwise(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        shift = params[..., 0]
        return (x - shift if inverse else x + shift), zeros_logdet(x)
