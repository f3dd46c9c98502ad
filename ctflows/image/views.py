"""Adapters between vector layers ``[B, D]`` and image layers ``[B, C, H, W]``.

    ImageView(f, shape):  x [B, C, H, W] -> flatten -> f -> reshape        (a CNF on images)
    FlatView(g):          x [B, C·H·W]   -> reshape -> g -> flatten        (an image layer in a vector test)
    PerPixel(f, shape):   f applied to the C channels of every pixel, log-dets summed over pixels

Flattening is a fixed permutation of coordinates, so log-dets pass through unchanged. The adapters keep no
stats of their own: the wrapped layer reports, and ``core.stats`` counts it once.
"""
from __future__ import annotations

import math

from torch import Tensor

from ctflows.core.transform import Transform
from ctflows.errors import ConfigurationError
from ctflows.image.settings import image_shape


class ImageView(Transform):
    """A vector layer on ``[B, D]`` used on images ``[B, C, H, W]``, ``D = C·H·W``: ``z = f(vec x)`` reshaped.

    vec is a fixed permutation, so log|det| is the wrapped layer's. FFJORD (Grathwohl et al. 2019) runs its
    image CNFs the same way: the ODE state is flat and the field reshapes it.

    This is how a :class:`~ctflows.continuous.CNF`, whose state is ``[B, D]``, runs a convolutional field
    (:class:`~ctflows.image.fields.ConvTimeField` reshapes back inside).
    """

    def __init__(self, transform: Transform, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.event_shape = image_shape("ImageView", shape)
        d = math.prod(self.event_shape)
        if transform.event_shape is not None and tuple(transform.event_shape) != (d,):
            raise ConfigurationError(f"ImageView: the wrapped layer has event shape {tuple(transform.event_shape)}, expected ({d},) for images {self.event_shape}")
        self.transform = transform
        self.context_features = transform.context_features

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        z, logdet = self.transform._forward(x.reshape(x.shape[0], -1), context)
        return z.reshape(x.shape), logdet

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        x, logdet = self.transform._inverse(z.reshape(z.shape[0], -1), context)
        return x.reshape(z.shape), logdet


class FlatView(Transform):
    """An image layer on ``[B, C, H, W]`` used on flat vectors ``[B, C·H·W]``: ``z = vec g(unvec x)``, same log-det.

    Lets image layers run through checks written for vector layers, e.g. the shared property suite.
    """

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        if transform.event_shape is None:
            raise ConfigurationError("FlatView: the wrapped layer must have a fixed event_shape (C, H, W)")
        self.image_shape = tuple(transform.event_shape)
        self.event_shape = (math.prod(self.image_shape),)
        self.transform = transform
        self.context_features = transform.context_features
        self.image_out_shape = tuple(getattr(transform, "out_shape", self.image_shape))

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        z, logdet = self.transform._forward(x.reshape(x.shape[0], *self.image_shape), context)
        return z.reshape(x.shape[0], -1), logdet

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        x, logdet = self.transform._inverse(z.reshape(z.shape[0], *self.image_out_shape), context)
        return x.reshape(z.shape[0], -1), logdet


class PerPixel(Transform):
    """A vector layer on ``[N, C]`` applied to each pixel's channels: ``[B, C, H, W] -> [B, C, H, W]``.

    log|det J|(x) = Σ_pixels log|det J_f|(x[:, :, h, w]). With :class:`~ctflows.linear.ActNorm` this is
    Glow's ActNorm (statistics per channel over batch and pixels); with :class:`~ctflows.linear.LULinear`
    it is Glow's invertible 1×1 convolution in LU form (Kingma & Dhariwal 2018).
    """

    def __init__(self, transform: Transform, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.event_shape = image_shape("PerPixel", shape)
        if transform.event_shape is not None and tuple(transform.event_shape) != (self.event_shape[0],):
            raise ConfigurationError(f"PerPixel: the wrapped layer has event shape {tuple(transform.event_shape)}, expected ({self.event_shape[0]},) channels")
        if transform.context_features is not None:
            raise ConfigurationError("PerPixel: conditional layers are not supported")
        self.transform = transform

    def _per_pixel(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        b, (c, h, w) = x.shape[0], self.event_shape
        pixels = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
        step = self.transform._inverse if inverse else self.transform._forward
        y, logdet = step(pixels, None)
        return y.reshape(b, h, w, c).permute(0, 3, 1, 2), logdet.reshape(b, h * w).sum(dim=1)

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self._per_pixel(x, inverse=False)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self._per_pixel(z, inverse=True)
