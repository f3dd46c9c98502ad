"""Fixed permutations of the features: volume preserving, log|det J| = 0 (Dinh et al. 2015)."""
from __future__ import annotations

import torch
from torch import Tensor

from ctflows.core.counts import positive_count
from ctflows.core.transform import Transform, zeros_logdet
from ctflows.core.validation import check_generator
from ctflows.errors import ConfigurationError


class Permutation(Transform):
    """``z_i = x_{perm[i]}`` for a fixed permutation ``perm``; shapes ``[B, D] -> [B, D]``."""

    def __init__(self, permutation: Tensor) -> None:
        super().__init__()
        try:
            given = torch.as_tensor(permutation)
        except (TypeError, ValueError, RuntimeError):
            given = None
        # Cast to long, floats would be truncated ([0.5, 1] -> [0, 1]) and booleans read as 0/1: refused instead.
        if given is None or (given.numel() > 0 and (given.dtype == torch.bool or given.is_floating_point() or given.is_complex())):
            raise ConfigurationError(
                f"Permutation: permutation must be integer indices such as torch.tensor([2, 0, 1]), got {permutation!r}"
            )
        permutation = given.long()
        d = permutation.numel()
        if d == 0 or permutation.dim() != 1 or not torch.equal(torch.sort(permutation).values, torch.arange(d)):
            raise ConfigurationError(f"Permutation: {permutation.tolist()} is not a permutation of 0..{d - 1}")
        self.event_shape = (d,)
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return x[:, self.permutation], zeros_logdet(x)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return z[:, self.inverse_permutation], zeros_logdet(z)


class ReversePermutation(Permutation):
    """Reverses the feature order: for even D it swaps the features a checkerboard coupling transforms.

    For odd D the reversal keeps every feature's parity (i -> D-1-i), so the coupling masks themselves must
    alternate (the builders in :mod:`ctflows.models` do this).
    """

    def __init__(self, features: int) -> None:
        super().__init__(torch.arange(positive_count("ReversePermutation", "features", features) - 1, -1, -1))


class RandomPermutation(Permutation):
    """A random permutation fixed at construction (drawn from ``generator`` when given)."""

    def __init__(self, features: int, generator: torch.Generator | None = None) -> None:
        features = positive_count("RandomPermutation", "features", features)
        check_generator("RandomPermutation", generator, torch.device("cpu"))  # randperm draws on the CPU
        super().__init__(torch.randperm(features, generator=generator))
