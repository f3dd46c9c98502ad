"""The residual branch g of an invertible residual block: an MLP whose Lipschitz constant is below 1.

    g(x) = W̃_L φ(… φ(W̃_1 x + b_1) …) + b_L,    Lip(g) ≤ Π_k ‖W̃_k‖₂ ≤ c^L ≤ c < 1

with every W̃_k spectrally normalised to norm ≤ c (:class:`SpectralLinear`) and φ 1-Lipschitz
(:mod:`ctflows.residual.activations`). Behrmann et al. 2019 (i-ResNet) show Lip(g) < 1 makes x + g(x)
invertible, by the Banach fixed-point theorem. A context, if any, is concatenated to x at the input;
the first layer's norm bounds the part acting on x as well, so Lip in x stays ≤ c^L for every context.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ctflows.networks import MLP
from ctflows.residual.activations import lipschitz_activation
from ctflows.residual.spectral_norm import SpectralLinear, check_coefficient


class LipschitzMLP(nn.Module):
    """``g: [B, features] (+ context [B, c]) -> [B, features]`` with Lip(g) in x at most ``coefficient ** len(layers)``.

    Built from the shared :class:`~ctflows.networks.MLP` (the layer layout and the context input): each
    of its ``nn.Linear`` layers is wrapped in a :class:`SpectralLinear` and each activation replaced by a
    1-Lipschitz one. The output layer is not zero-initialised: power iteration on a zero matrix has no
    direction to find, and the residual block is invertible from the start anyway.

    Args:
        features: D. hidden: hidden widths. context_features: width of an optional context.
        coefficient: c in (0, 1), the bound on each layer's spectral norm.
        activation: ``lipswish`` (default), ``elu``, ``tanh`` or ``softplus``.
        iterations, eval_iterations: power iterations per call in train / at most in eval mode.
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64),
        *,
        context_features: int | None = None,
        coefficient: float = 0.97,
        activation: str = "lipswish",
        iterations: int = 5,
        eval_iterations: int = 200,
    ) -> None:
        super().__init__()
        self.coefficient = check_coefficient(coefficient, "LipschitzMLP")
        lipschitz_activation(activation)  # fail on a bad name before building anything
        self.mlp = MLP(features, features, hidden, context_features=context_features, activation="elu", zero_last=False)
        net = self.mlp.net
        for i, module in enumerate(net):
            if isinstance(module, nn.Linear):
                net[i] = SpectralLinear(module, coefficient, iterations=iterations, eval_iterations=eval_iterations)
            else:
                net[i] = lipschitz_activation(activation)
        self.depth = sum(isinstance(m, SpectralLinear) for m in net)

    @property
    def lipschitz_bound(self) -> float:
        """c^L: the bound on Lip(g) that the construction guarantees (up to power-iteration accuracy)."""
        return self.coefficient**self.depth

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.mlp(x, context)
