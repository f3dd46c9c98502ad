"""Uniform dequantization: from integer pixels to a continuous density (Theis et al. 2016; Uria et al. 2013).

    y = k + u,  u ~ U[0, 1)^D   and   x = y / L ∈ [0, 1)^D       (k ∈ {0, …, L-1}^D, L gray levels)

For any density q on [0, 1)^D the discrete model P(k) = ∫_{[0,1)^D} q((k + u)/L) L^{-D} du satisfies
log P(k) ≥ E_u[log q((k + u)/L)] - D log L (Jensen), so training on fresh noise maximises a lower bound on
the discrete log-likelihood, and the bits per dimension computed from it are an upper bound.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from ctflows.core.counts import check_seed, positive_count, whole_setting
from ctflows.errors import ConfigurationError, DataError


def level_count(owner: str, levels: object) -> int:
    """``levels`` as an int if it is a whole number >= 2 (:func:`~ctflows.core.counts.whole_number`: NumPy and 0-d
    torch integers too; one level would leave nothing to model), else a :class:`ConfigurationError`."""
    return whole_setting(owner, "levels", levels, "an int >= 2 (e.g. 256 for 8-bit images)", lambda v: v >= 2)


def check_levels(images: Tensor, levels: int, owner: str = "dequantize") -> int:
    """``levels`` as an int (:func:`level_count`); raise :class:`DataError` unless ``images [N, ...]`` holds integers
    ``k ∈ {0, …, L-1}``, L = ``levels``.

    Dequantization ``(k + u) / L`` is only a density on the unit cube for such k (Theis et al. 2016).
    """
    levels = level_count(owner, levels)
    if not isinstance(images, Tensor) or images.dim() < 2 or images.shape[0] == 0:
        raise DataError(f"{owner}: images must be a non-empty Tensor [N, C, H, W] of integer pixel values")
    values = images.double()
    if not bool((values == values.round()).all()) or float(values.min()) < 0 or float(values.max()) > levels - 1:
        raise DataError(
            f"{owner}: pixels must be integers in [0, {levels - 1}] for levels={levels}, got values in "
            f"[{float(values.min()):.4g}, {float(values.max()):.4g}]; pass the raw integer images and their number of levels"
        )
    return levels


def dequantize(
    images: Tensor, levels: int, *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Uniform dequantization (Theis et al. 2016): ``x = (k + u) / L``, ``u ~ U[0, 1)``, ``[N, ...] -> [N, ...]`` in ``[0, 1)``.

    The noise comes from ``generator`` (CPU) so a seed gives the same points on every device.
    """
    levels = check_levels(images, levels)
    dtype = dtype or torch.get_default_dtype()
    noise = torch.rand(images.shape, generator=generator, dtype=dtype)
    k = images.to(dtype=dtype, device="cpu")
    x = (k + noise).div(levels)
    # k + u can round up to k + 1 in float32 (about 1 pixel in 10^5 for k >= 128), which puts the point on the next
    # cell's edge (for k = L - 1, at exactly 1): keep it just inside its own cell [k/L, (k+1)/L), and [0, 1).
    upper = (k + 1).div(levels)
    return torch.minimum(x, torch.nextafter(upper, torch.zeros_like(upper))).to(images.device)


class DequantizedImages:
    """Re-iterable batches of freshly dequantized images, for ``fit``: each pass shuffles and draws new noise.

    Yields ``x [batch, C, H, W]`` in ``[0, 1)`` (the last batch of a pass may be smaller). Noise and order
    come from one seeded CPU generator, so a run is reproducible.
    """

    def __init__(self, images: Tensor, levels: int, batch_size: int = 128, *, seed: int | None = 0) -> None:
        levels = check_levels(images, levels, owner="DequantizedImages")
        batch_size = positive_count("DequantizedImages", "batch_size", batch_size)
        # torch took -1 as 2^64 - 1 without a word and failed on 3.5 or True with its own RuntimeError. None draws a
        # seed once, so that restarted() still repeats the batches.
        seed = check_seed("DequantizedImages", seed)
        seed = int(torch.randint(2**62, (1,))) if seed is None else seed
        self.images, self.levels, self.batch_size, self.seed = images, levels, batch_size, seed
        self.generator = torch.Generator().manual_seed(seed)

    def restarted(self) -> "DequantizedImages":
        """The same batches from the start again: a new stream from the same seed (for each model of a comparison)."""
        return DequantizedImages(self.images, self.levels, self.batch_size, seed=self.seed)

    def __iter__(self) -> Iterator[Tensor]:
        order = torch.randperm(self.images.shape[0], generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            batch = self.images[order[start : start + self.batch_size]]
            yield dequantize(batch, self.levels, generator=self.generator)

    def __len__(self) -> int:
        return -(-self.images.shape[0] // self.batch_size)
