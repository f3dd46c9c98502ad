"""Masked autoregressive flow layer (Papamakarios et al. 2017, MAF) on a MADE conditioner.

    z_i = x_i · exp(s_i(x_{<i})) + t_i(x_{<i}),   s_i = b · tanh(ŝ_i / b),   log|det J| = Σ_i s_i

Forward (data -> base, density evaluation) is one MADE pass. The inverse (sampling) must recover x one
feature at a time, x_i = (z_i - t_i(x_{<i})) · exp(-s_i), so it takes D sequential MADE passes: sampling
is D times slower than density evaluation. (An inverse autoregressive flow is this layer wrapped in
``Inverse``, with the costs swapped.)
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor

from ctflows.autoregressive.made import MADE, check_order
from ctflows.core.counts import optional_count, positive_count, real_setting
from ctflows.networks import check_network, soft_clamp
from ctflows.core.transform import Transform


class MaskedAutoregressive(Transform):
    """Affine autoregressive layer ``[B, D] -> [B, D]``; feature ``order[k]`` depends on ``order[:k]``.

    Args:
        features: D.
        hidden: MADE hidden widths (each at least D - 1, or D with a context, for full connectivity).
        order: autoregressive order, a permutation of ``range(D)`` (default natural; alternate it, or put
            a permutation between layers, when stacking).
        context_features: width of an optional context given to every hidden unit.
        activation: MADE activation.
        scale_bound: b, the bound on |log-scale| per feature (> 0), as in AffineCoupling.
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64),
        *,
        order: Sequence[int] | None = None,
        context_features: int | None = None,
        activation: str = "relu",
        scale_bound: float = 3.0,
    ) -> None:
        super().__init__()
        features = positive_count("MaskedAutoregressive", "features", features)
        check_order("MaskedAutoregressive", order, features)
        self.event_shape = (features,)
        self.context_features = optional_count(type(self).__name__, "context_features", context_features)
        # An infinite bound makes the soft clamp inf · tanh(0) = NaN.
        self.scale_bound = real_setting(
            "MaskedAutoregressive", "scale_bound", scale_bound, "a finite number > 0, e.g. 3.0", lambda b: b > 0
        )
        check_network("MaskedAutoregressive", hidden, activation)
        self.made = MADE(features, 2, hidden, order=order, context_features=context_features, activation=activation)

    def _scale_shift(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        params = self.made(x, context)
        return soft_clamp(params[..., 0], self.scale_bound), params[..., 1]

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        log_scale, shift = self._scale_shift(x, context)
        self.stats = {}
        return x * log_scale.exp() + shift, log_scale.sum(dim=1)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        # After pass k the features of degree <= k are exact (each needs only lower degrees), so D passes
        # suffice, and the last pass's scales were computed from an x that is exact where they look.
        x = z
        for _ in range(self.event_shape[0]):
            log_scale, shift = self._scale_shift(x, context)
            x = (z - shift) * (-log_scale).exp()
        self.stats = {"iterations": self.event_shape[0]}  # sequential MADE passes
        return x, -log_scale.sum(dim=1)


__all__ = ["MaskedAutoregressive"]
