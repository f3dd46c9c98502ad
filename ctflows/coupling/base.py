"""The coupling construction shared by NICE, RealNVP and spline couplings (Dinh et al. 2015, 2017).

    z_A = x_A,    z_B = τ(x_B; θ(x_A, context)),    log|det J| = Σ_i log|∂τ/∂x_{B,i}|

τ is an elementwise invertible map whose parameters θ come from a conditioner network; since θ does
not depend on x_B, the Jacobian is triangular and the inverse is τ⁻¹ with the same θ.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ctflows.core.counts import optional_count, positive_count
from ctflows.core.transform import Transform
from ctflows.errors import ConfigurationError
from ctflows.networks import MLP, check_network


def checkerboard_mask(features: int, parity: int = 0, *, owner: str = "checkerboard_mask") -> Tensor:
    """Boolean ``[features]`` mask, True on the features that are transformed (every other one)."""
    features = positive_count(owner, "features", features)
    # Only 0 and 1 differ; 2 or -1 would silently give one of them, which hides a mistaken layer index.
    if parity not in (0, 1):
        raise ConfigurationError(f"{owner}: parity must be 0 or 1 (which half is transformed), got {parity!r}")
    return (torch.arange(features) + int(parity)) % 2 == 1


def _mask(owner: str, mask: object, features: int) -> Tensor:
    """``mask`` as a boolean ``[features]`` tensor with both values; it may be given as 0/1 numbers too."""
    try:
        tensor = torch.as_tensor(mask)
    except (TypeError, ValueError, RuntimeError):
        tensor = None
    # Any other number (2, 0.5) would silently count as True.
    if tensor is None or not bool(((tensor == 0) | (tensor == 1)).all()):
        raise ConfigurationError(f"{owner}: mask must hold only True/False (or 1/0), got {mask!r}")
    tensor = tensor.to(torch.bool)
    if tensor.shape != (features,) or tensor.all() or not tensor.any():
        raise ConfigurationError(f"{owner}: mask must be a [{features}] boolean tensor with both True and False entries, got {mask!r}")
    return tensor


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
        owner = type(self).__name__
        features = positive_count(owner, "features", features)
        if features < 2:
            raise ConfigurationError(f"{owner}: a coupling layer needs at least 2 features, got {features}")
        mask = checkerboard_mask(features, parity, owner=owner) if mask is None else _mask(owner, mask, features)
        self.event_shape = (features,)
        self.context_features = optional_count(type(self).__name__, "context_features", context_features)
        self.register_buffer("transformed", torch.nonzero(mask).flatten())
        self.register_buffer("identity", torch.nonzero(~mask).flatten())
        n_out = int(mask.sum()) * self.params_per_feature
        check_network(owner, hidden, activation)
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
