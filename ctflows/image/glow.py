"""Glow's flow step for images (Kingma & Dhariwal 2018): ActNorm, invertible 1×1 convolution, affine coupling.

    actnorm:     y = (x - μ_c) e^{-s_c}            log|det| = -H W Σ_c s_c
    1×1 conv:    y = W x at every pixel, W = PLU    log|det| = H W Σ_c log|U_cc|
    coupling:    y_B = x_B e^{s(x_A)} + t(x_A)      log|det| = Σ s;   (A, B) = the two channel halves

ActNorm and the 1×1 convolution are the vector layers :class:`~ctflows.linear.ActNorm` and
:class:`~ctflows.linear.LULinear` applied per pixel (:class:`~ctflows.image.views.PerPixel`); the
coupling's log-scale is bounded by ``soft_clamp`` as in :class:`~ctflows.coupling.AffineCoupling`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ctflows.core.counts import positive_count, real_setting
from ctflows.core.transform import Chain, Transform, sum_except_batch
from ctflows.errors import ConfigurationError
from ctflows.image.settings import image_shape
from ctflows.image.views import PerPixel
from ctflows.linear import ActNorm, LULinear
from ctflows.networks import soft_clamp


def actnorm_2d(shape: tuple[int, int, int]) -> PerPixel:
    """Glow's ActNorm on ``[B, C, H, W]``: per-channel scale and shift, set from the first training batch."""
    shape = image_shape("actnorm_2d", shape)
    return PerPixel(ActNorm(shape[0]), shape)


def invertible_conv_1x1(shape: tuple[int, int, int]) -> PerPixel:
    """Glow's invertible 1×1 convolution in LU form on ``[B, C, H, W]``, starting at a random rotation."""
    shape = image_shape("invertible_conv_1x1", shape)
    return PerPixel(LULinear(shape[0]), shape)


class ConvAffineCoupling(Transform):
    """Affine coupling across channels: ``[B, C, H, W] -> [B, C, H, W]`` (RealNVP 2017; Glow 2018).

    The first ⌊C/2⌋ channels (``parity=0``) or the last ⌈C/2⌉ (``parity=1``, the mirror image) condition a
    small CNN (3×3, 1×1, 3×3 with ReLU; the last convolution zero-initialised so the layer starts as the
    identity) that outputs a bounded log-scale ``s = b tanh(ŝ / b)`` and shift ``t`` for the other channels,
    so alternating parities transform every channel, also for odd C. Needs C >= 2.
    """

    def __init__(self, shape: tuple[int, int, int], hidden: int = 64, *, parity: int = 0, scale_bound: float = 3.0) -> None:
        super().__init__()
        owner = "ConvAffineCoupling"
        self.event_shape = image_shape(owner, shape)
        hidden = positive_count(owner, "hidden", hidden)
        self.scale_bound = real_setting(owner, "scale_bound", scale_bound, "a finite number > 0, e.g. 3.0", lambda b: b > 0)
        if parity not in (0, 1):
            raise ConfigurationError(f"ConvAffineCoupling: parity must be 0 (first half conditions) or 1 (last half), got {parity!r}")
        c = self.event_shape[0]
        if c < 2:  # one half would be empty: nothing to condition on, or nothing to transform
            raise ConfigurationError(
                f"ConvAffineCoupling: needs at least 2 channels to split into halves, got shape {self.event_shape}; "
                "squeeze the images first (Squeeze turns C channels into 4C)"
            )
        self.split = c // 2 if parity == 0 else c - c // 2  # channels that condition
        self.parity = int(parity)
        out = 2 * (c - self.split)
        self.net = nn.Sequential(
            nn.Conv2d(self.split, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, out, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _halves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # parity 0 conditions on the first channels, parity 1 on the last ones.
        if self.parity == 0:
            return x[:, : self.split], x[:, self.split :]
        return x[:, -self.split :], x[:, : -self.split]

    def _join(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([a, b] if self.parity == 0 else [b, a], dim=1)

    def _scale_shift(self, a: Tensor) -> tuple[Tensor, Tensor]:
        raw_scale, shift = self.net(a).chunk(2, dim=1)
        return soft_clamp(raw_scale, self.scale_bound), shift

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        a, b = self._halves(x)
        log_scale, shift = self._scale_shift(a)
        return self._join(a, b * torch.exp(log_scale) + shift), sum_except_batch(log_scale)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        a, b = self._halves(z)
        log_scale, shift = self._scale_shift(a)
        return self._join(a, (b - shift) * torch.exp(-log_scale)), -sum_except_batch(log_scale)


def glow_step(shape: tuple[int, int, int], hidden: int = 64, *, parity: int = 0) -> Chain:
    """One Glow step on ``[B, C, H, W]``: ActNorm, invertible 1×1 convolution, affine coupling (Kingma & Dhariwal 2018)."""
    shape = image_shape("glow_step", shape)
    return Chain(actnorm_2d(shape), invertible_conv_1x1(shape), ConvAffineCoupling(shape, hidden, parity=parity))
