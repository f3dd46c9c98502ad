"""The logit preprocessing of images (Dinh et al., RealNVP, 2017): from the unit cube to all of R^D.

    s = α + (1 - 2α) x,   z = log s - log(1 - s),   log|det J| = Σ_i [log(1 - 2α) - log s_i - log(1 - s_i)]

Dequantized pixels ``x ∈ [0, 1)`` are squeezed into ``[α, 1 - α]`` so the logit stays finite; α = 0.05 is
RealNVP's choice for images (FFJORD uses 1e-6 on MNIST). The map is a bijection from the slightly larger
interval ``(-α/(1-2α), 1 + α/(1-2α))`` onto R, so a model's density (and its samples) live on that box and
the mass outside ``[0, 1)^D`` is lost to the data: bits per dimension computed from ``Flow.log_prob``
(log-det included) are an upper bound, exact as α -> 0.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ctflows.core.counts import real_setting
from ctflows.core.transform import Transform, sum_except_batch
from ctflows.errors import InputError
from ctflows.image.settings import sizes


class Logit(Transform):
    """``x [B, *shape] ∈ [0, 1] -> z = logit(α + (1 - 2α) x) [B, *shape]`` with its log-det (RealNVP, 2017).

    Args:
        shape: event shape, e.g. ``(1, 8, 8)``.
        alpha: margin α in ``[0, 0.5)``; with α = 0 the input must lie strictly inside (0, 1).

    The forward input is checked to lie in the map's domain ``(-α/(1-2α), 1 + α/(1-2α))``, which holds
    ``[0, 1]`` and everything the inverse returns (dequantize integer pixels first, see
    :func:`ctflows.image.dequantize`).
    """

    def __init__(self, shape: tuple[int, ...], alpha: float = 0.05) -> None:
        super().__init__()
        self.alpha = real_setting("Logit", "alpha", alpha, "in [0, 0.5) (e.g. 0.05)", lambda a: 0.0 <= a < 0.5)
        self.event_shape = sizes("Logit", shape)

    @property
    def domain(self) -> tuple[float, float]:
        """The open interval ``(-α/(1-2α), 1 + α/(1-2α))`` of inputs whose α + (1 - 2α) x lies in (0, 1)."""
        return _domain(self.alpha)

    def check(
        self, x: Tensor, context: Tensor | None, *, name: str = "input", inverse: bool = False, context_checked: bool = False
    ) -> None:
        super().check(x, context, name=name, inverse=inverse, context_checked=context_checked)
        # The domain is where α + (1 - 2α) x lies in (0, 1): open, so that the logit stays finite, and with
        # room around [0, 1] when α > 0, where the model's own samples may fall. Its ends are taken as rounded
        # in x's dtype: an ulp inside the exact ends can still give s = 0 or 1 (an infinite log-det).
        low, high = _finite_ends(self.alpha, x.dtype)
        if not inverse and not bool(((x >= low) & (x <= high)).all()):
            low, high = self.domain
            smallest, largest = float(x.min()), float(x.max())
            interval = f"({low:.4g}, {high:.4g})" if self.alpha > 0 else "(0, 1) (alpha=0 leaves no room at the ends)"
            inside = low < smallest <= largest < high  # refused for rounding alone
            rounded = f", where alpha + (1 - 2 alpha) x rounds to 0 or 1 in {x.dtype}" if inside else ""
            raise InputError(
                f"Logit: {name} must lie in {interval} (got values in [{smallest:.9g}, {largest:.9g}]{rounded}); "
                "scale pixels to [0, 1), e.g. with ctflows.image.dequantize(images, levels)"
            )

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        s = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(s) - torch.log1p(-s)
        return z, sum_except_batch(-torch.log(s) - torch.log1p(-s)) + x[0].numel() * math.log1p(-2 * self.alpha)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        x = (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)
        # log s + log(1 - s) with s = sigmoid(z), written stably for large |z|.
        per_value = F.logsigmoid(z) + F.logsigmoid(-z)
        # Where sigmoid(z) rounds to (or near) 0 or 1 (|z| above about 17 in float32), x lands on or near an end of the
        # open domain, where the forward's α + (1 - 2α) x rounds to 0 or 1 (an infinite log-det) or far from
        # sigmoid(z): keep x where the forward is finite, and where the log-det at that x differs from the one at z
        # take x's, so that the model's own sample is scored as sampled (log_prob(x) = what sample_and_log_prob gave).
        x = x.clamp(*_finite_ends(self.alpha, x.dtype))  # no `if ....any()`, which would wait for a GPU
        s = self.alpha + (1 - 2 * self.alpha) * x
        at_x = torch.log(s) + torch.log1p(-s)
        per_value = torch.where((at_x - per_value).abs() > torch.finfo(x.dtype).eps ** 0.5, at_x, per_value)
        logdet = sum_except_batch(per_value) - z[0].numel() * math.log1p(-2 * self.alpha)
        return x, logdet

    def extra_repr(self) -> str:
        return f"shape={self.event_shape}, alpha={self.alpha}"


def _domain(alpha: float) -> tuple[float, float]:
    low = -alpha / (1 - 2 * alpha)
    return low, 1 - low


@functools.cache
def _finite_ends(alpha: float, dtype: torch.dtype) -> tuple[float, float]:
    """The smallest and largest ``x`` of ``dtype`` that the forward accepts and maps to a finite value: inside the open
    domain, with α + (1 - 2α) x (computed as the forward does) strictly between 0 and 1. An ulp inside the domain's
    ends is not always enough: for α = 0.3 in float32 that x still gives s = 0."""
    ends = torch.tensor(_domain(alpha), dtype=dtype)
    x = torch.nextafter(ends, ends.flip(0))
    for _ in range(64):  # a few ulps at most
        s = alpha + (1 - 2 * alpha) * x
        bad = torch.stack([s[0] <= 0, s[1] >= 1])  # x starts strictly inside the domain and only moves inward
        if not bool(bad.any()):
            return float(x[0]), float(x[1])
        x = torch.where(bad, torch.nextafter(x, x.flip(0)), x)
    raise AssertionError(f"Logit: no finite end found for alpha={alpha} in {dtype}")  # pragma: no cover
