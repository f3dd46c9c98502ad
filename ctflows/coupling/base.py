"""The coupling construction shared by NICE, RealNVP and spline couplings (Dinh et al. 2015, 2017).

    z_A = x_A,    z_B = τ(x_B; θ(x_A, context)),    log|det J| = Σ_i log|∂τ/∂x_{B,i}|

τ is an elementwise invertible map whose parameters θ come from a conditioner network; since θ does
not depend on x_B, the Jacobian is triangular and the inverse is τ⁻¹ with the same θ.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ctflows.core.counts import optional_count
from ctflows.core.transform import Transform
from ctflows.errors import ConfigurationError
from ctflows.networks import MLP


def checkerboard_mask(features: int, parity: int = 0) -> Tensor:
    """Boolean ``[features]`` mask, True on the features that are transformed (every other one)."""
    return (torch.arange(features) + parity) % 2 == 1


class Coupling(Transform):
    """Base class: subclasses set ``params_per_feature`` and implement ``elementwise(x_B, θ, inverse)``.

    Args:
        features: D, the event size.
        mask: boolean ``[D]``, True where features are transformed (default: alternate, by ``parity``).
        hidden: hidden widths of the conditioner MLP.
        context_features: width of an optional context given to the conditioner.
        activation: conditioner activation.
    """

    params_per_feature: int = 1

    def __init__(
        self,
        features: int,
        *,
        mask: Tensor | None = None,
        parity: int = 0,
        hidden: Sequence[int] = (64, 64),
        context_features: int | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if features < 2:
            raise ConfigurationError(f"{type(self).__name__}: a coupling layer needs at least 2 features, got {features}")
        mask = checkerboard_mask(features, parity) if mask is None else torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != (features,) or mask.all() or not mask.any():
            raise ConfigurationError(f"{type(self).__name__}: mask must be a [{features}] boolean tensor with both True and False entries")
        self.event_shape = (features,)
        self.context_features = optional_count(type(self).__name__, "context_features", context_features)
        self.register_buffer("transformed", torch.nonzero(mask).flatten())
        self.register_buffer("identity", torch.nonzero(~mask).flatten())
        n_out = int(mask.sum()) * self.params_per_feature
        self.conditioner = MLP(
            len(self.identity), n_out, hidden, context_features=context_features, activation=activation
        )

    def elementwise(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        """Apply τ (or τ⁻¹) to ``x [B, K]`` with ``params [B, K, P]``; return the result and ``[B]`` log-det."""
        raise NotImplementedError

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        x_a = x[:, self.identity]
        params = self.conditioner(x_a, context).reshape(x.shape[0], len(self.transformed), self.params_per_feature)
        y_b, logdet = self.elementwise(x[:, self.transformed], params, inverse)
        out = torch.empty_like(x)
        out[:, self.identity] = x_a
        out[:, self.transformed] = y_b
        return out, logdet

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, inverse=False)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self._couple(z, context, inverse=True)
