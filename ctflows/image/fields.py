"""Convolutional, time-conditioned velocity fields for CNFs on images (Grathwohl et al., FFJORD, 2019).

    concat-squash conv:  y = conv(h) ⊙ σ(G c + g) + H c        (gate and shift per channel, broadcast over pixels)
    field:               h_0 = x,  h_{k+1} = act(L_k(h_k, c)),  v = L_K(h_K, c),   c = c(t)

The CNF integrates flat states ``[B, D]``, so the field takes ``x [B, C·H·W]``, reshapes it to
``[B, C, H, W]`` for the convolutions and flattens the velocity back. Activations are smooth because
adaptive solvers take tiny steps across kinks; the last layer starts scaled down so a new CNF is near the
identity.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from ctflows.continuous.fields import TimeIdentity, VelocityField, smooth_activation
from ctflows.core.counts import positive_count, real_setting
from ctflows.core.counts import widths as widths_of
from ctflows.errors import ConfigurationError, InputError
from ctflows.image.settings import image_shape


class ConcatSquashConv2d(nn.Module):
    """``y = conv(h) ⊙ sigmoid(G c + g) + H c`` (FFJORD 2019): ``h [B, in, H, W], c [1|B, k] -> [B, out, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int, cond_features: int, kernel_size: int = 3) -> None:
        super().__init__()
        # A zero width builds (torch warns only) and fails at the first call; a float fails inside nn.Conv2d.
        in_channels, out_channels, cond_features, kernel_size = (
            positive_count("ConcatSquashConv2d", name, value)
            for name, value in [("in_channels", in_channels), ("out_channels", out_channels),
                                ("cond_features", cond_features), ("kernel_size", kernel_size)]
        )
        if kernel_size % 2 == 0:  # "same" padding k // 2 keeps H × W only for odd k
            raise ConfigurationError(f"ConcatSquashConv2d: kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.gate = nn.Linear(cond_features, out_channels)
        self.shift = nn.Linear(cond_features, out_channels, bias=False)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        gate = torch.sigmoid(self.gate(c))[:, :, None, None]
        return self.conv(h) * gate + self.shift(c)[:, :, None, None]

    @torch.no_grad()
    def scale_(self, factor: float) -> None:
        """Shrink the layer's output (used on the last layer so a new field is near zero)."""
        self.conv.weight.mul_(factor)
        self.conv.bias.zero_()
        self.shift.weight.mul_(factor)


class ConvTimeField(VelocityField):
    """A stack of concat-squash 3×3 convolutions: ``field(t, x [B, C·H·W]) -> dx/dt [B, C·H·W]``.

    Args:
        shape: image shape ``(C, H, W)`` of the state.
        hidden: hidden channel widths, e.g. ``(32, 32)``.
        activation: ``"softplus"``, ``"tanh"`` or ``"silu"``.
        time_embedding: module ``t -> [1, k]`` with ``out_features``; default plain ``t``.
        init_scale: factor on the last layer's initial weights; 0 gives v ≡ 0.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        hidden: Sequence[int] = (32, 32),
        *,
        activation: str = "softplus",
        time_embedding: nn.Module | None = None,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        activation_module = smooth_activation(activation, "ConvTimeField")
        self.shape = image_shape("ConvTimeField", shape)
        hidden = widths_of("ConvTimeField", hidden)
        init_scale = real_setting("ConvTimeField", "init_scale", init_scale, "a finite number, e.g. 0.1 (0 starts at v = 0)")
        self.features = math.prod(self.shape)
        self.time_embedding = time_embedding if time_embedding is not None else TimeIdentity()
        cond = self.time_embedding.out_features
        widths = [self.shape[0], *hidden, self.shape[0]]
        self.layers = nn.ModuleList(ConcatSquashConv2d(a, b, cond) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = activation_module
        self.layers[-1].scale_(init_scale)

    def forward(self, t: Tensor, x: Tensor, context: Tensor | None = None) -> Tensor:
        if x.shape[-1] != self.features:  # reshape(-1, C, H, W) would take [B, k·D] for a batch of k·B images
            raise InputError(
                f"ConvTimeField: x must have shape [batch, {self.features}] (images {self.shape} flattened), got {list(x.shape)}; "
                "wrap the CNF in ImageView to pass images [B, C, H, W]"
            )
        c = self.time_embedding(torch.as_tensor(t, dtype=x.dtype, device=x.device))
        h = x.reshape(-1, *self.shape)
        for layer in self.layers[:-1]:
            h = self.activation(layer(h, c))
        return self.layers[-1](h, c).reshape(x.shape)
