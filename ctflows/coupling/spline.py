"""Rational-quadratic spline coupling (Durkan et al. 2019, "Neural Spline Flows").

    z_B = g(x_B; θ(x_A)),   g a monotone rational-quadratic spline with K bins on [-B, B], identity outside,
    log|det J| = Σ_i log g'(x_{B,i})

The conditioner gives 3K - 1 numbers per transformed feature: K bin widths, K bin heights (softmax with
a floor) and K - 1 interior knot derivatives (shifted softplus with a floor); the two end derivatives are
1, matching the identity tails. Zero parameters, the conditioner's initial output, give the identity.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ctflows.coupling.base import Coupling
from ctflows.core.counts import positive_count
from ctflows.coupling.rational_quadratic import check_spline_settings, rational_quadratic_spline
from ctflows.errors import ConfigurationError


class RQSplineCoupling(Coupling):
    """``z_B = g(x_B; θ(x_A))`` with a rational-quadratic spline g; shapes ``[B, D] -> [B, D]``.

    Args:
        bins: K, the number of spline bins (>= 2).
        bound: B; inputs outside [-B, B] pass through unchanged (log-det 0 there).
        min_width, min_height, min_derivative: floors on bin sizes (as fractions of 2B) and knot derivatives;
            they bound the slopes and keep the inverse well conditioned.
        **kwargs: as :class:`Coupling` (features, mask/parity, hidden, context_features, activation).
    """

    def __init__(
        self,
        features: int,
        *,
        bins: int = 8,
        bound: float = 3.0,
        min_width: float = 1e-3,
        min_height: float = 1e-3,
        min_derivative: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        bins = positive_count("RQSplineCoupling", "bins", bins)
        if bins < 2:
            raise ConfigurationError(f"RQSplineCoupling: bins must be an integer >= 2, got {bins}")
        bound, *minimums = check_spline_settings("RQSplineCoupling", bins, bound, min_width, min_height, min_derivative)
        self.params_per_feature = 3 * bins - 1  # set before Coupling sizes its conditioner
        super().__init__(features, **kwargs)
        self.bins = bins
        self.bound = bound
        self.minimums = dict(zip(("min_width", "min_height", "min_derivative"), minimums))

    def elementwise(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        k = self.bins
        y, logdet = rational_quadratic_spline(
            x,
            params[..., :k],
            params[..., k : 2 * k],
            params[..., 2 * k :],
            bound=self.bound,
            inverse=inverse,
            **self.minimums,
        )
        return y, logdet.sum(dim=1)


__all__ = ["RQSplineCoupling"]
