"""RealNVP affine coupling (Dinh et al. 2017) with a bounded log-scale.

    z_B = x_B · exp(s) + t,   s = b · tanh(ŝ / b),   log|det J| = Σ s

The soft clamp keeps |s| < b (default 3) so that no single layer can blow a point up or collapse it,
the usual cause of NaNs early in RealNVP training; near zero it is the identity on ŝ, so it does not
slow learning.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ctflows.coupling.base import Coupling
from ctflows.core.counts import real_setting
from ctflows.networks import soft_clamp


class AffineCoupling(Coupling):
    """``z_B = x_B · exp(s(x_A)) + t(x_A)``; shapes ``[B, D] -> [B, D]``.

    Args:
        scale_bound: b, the bound on |log-scale| per layer (> 0).
        **kwargs: as :class:`Coupling` (features, mask/parity, hidden, context_features, activation).
    """

    params_per_feature = 2

    def __init__(self, features: int, *, scale_bound: float = 3.0, **kwargs: Any) -> None:
        # An infinite bound makes the soft clamp inf · tanh(0) = NaN.
        scale_bound = real_setting("AffineCoupling", "scale_bound", scale_bound, "a finite number > 0, e.g. 3.0", lambda b: b > 0)
        super().__init__(features, **kwargs)
        self.scale_bound = scale_bound

    def elementwise(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        log_scale = soft_clamp(params[..., 0], self.scale_bound)
        shift = params[..., 1]
        logdet = log_scale.sum(dim=1)
        if inverse:
            return (x - shift) * torch.exp(-log_scale), -logdet
        return x * torch.exp(log_scale) + shift, logdet
