"""PerPixel is the vector layer applied to each pixel's channel vector, log-dets summed over pixels, and with ActNorm
it is Glow's ActNorm: after its first training batch every channel has mean 0 and standard deviation 1 over the
batch and all pixels (Kingma & Dhariwal 2018). ImageView, PerPixel and Multiscale also take a layer of any shape."""
from __future__ import annotations

import math

import pytest
import torch

from brute_force import brute_force_logdets
from ctflows.core import Transform
from ctflows.image import FlatView, ImageView, Multiscale, PerPixel, actnorm_2d
from image.cases import CASES, build, inputs

PER_PIXEL = next(case for case in CASES if case.name == "per_pixel_coupling")


def test_per_pixel_applies_the_vector_layer_to_each_pixel() -> None:
    """Both ways: z[:, :, h, w] = f(x[:, :, h, w]) and log|det| = Σ_{h,w} log|det J_f| at each pixel."""
    layer, x = build(PER_PIXEL), inputs(PER_PIXEL)
    z, logdet = layer(x)
    x_back, logdet_inverse = layer.inverse(z)
    pixel_logdets, pixel_inverse_logdets = [], []
    for h in range(x.shape[2]):
        for w in range(x.shape[3]):
            z_pixel, logdet_pixel = layer.transform(x[:, :, h, w])
            x_pixel, logdet_inverse_pixel = layer.transform.inverse(z[:, :, h, w])
            torch.testing.assert_close(z[:, :, h, w], z_pixel, atol=1e-12, rtol=0)
            torch.testing.assert_close(x_back[:, :, h, w], x_pixel, atol=1e-12, rtol=0)
            pixel_logdets.append(logdet_pixel)
            pixel_inverse_logdets.append(logdet_inverse_pixel)
    torch.testing.assert_close(logdet, sum(pixel_logdets), atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet_inverse, sum(pixel_inverse_logdets), atol=1e-12, rtol=0)


def test_actnorm_2d_standardises_each_channel_over_batch_and_pixels() -> None:
    generator = torch.Generator().manual_seed(0)
    shift, scale = torch.tensor([-3.0, 0.0, 5.0]), torch.tensor([0.5, 2.0, 10.0])
    x = torch.randn(16, 3, 4, 4, generator=generator, dtype=torch.float64) * scale.view(3, 1, 1).double()
    x = x + shift.view(3, 1, 1).double()
    layer = actnorm_2d((3, 4, 4)).double().train()
    z, logdet = layer(x)
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(z.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-5, rtol=0)
    # log|det| = -H W Σ_c log std_c: the per-channel scale counted once per pixel (up to ActNorm's eps in std + eps)
    expected = -16 * torch.log(x.std(dim=(0, 2, 3))).sum()
    torch.testing.assert_close(logdet, expected.expand(16).detach(), atol=0, rtol=1e-5)


class Doubling(Transform):
    """z = 2 x on any shape (``event_shape`` None): log|det| = (numbers per sample) · log 2."""

    def _forward(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return 2 * x, torch.full((x.shape[0],), x[0].numel() * math.log(2), dtype=x.dtype)

    def _inverse(self, z: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return z / 2, torch.full((z.shape[0],), -z[0].numel() * math.log(2), dtype=z.dtype)


SHAPE_FREE = {
    "image_view": lambda: ImageView(Doubling(), (1, 4, 4)),
    "per_pixel": lambda: PerPixel(Doubling(), (1, 4, 4)),
    "multiscale": lambda: Multiscale((1, 4, 4), [Doubling(), Doubling()]),
}


@pytest.mark.parametrize("factory", SHAPE_FREE.values(), ids=SHAPE_FREE.keys())
def test_views_and_multiscale_take_a_layer_of_any_shape(factory) -> None:
    """A layer with ``event_shape`` None fits every shape. The multiscale's second level sees the 8 of the 16 numbers
    its first level kept, so its log-det is (16 + 8) log 2 (the brute-force Jacobian agrees); the views' is 16 log 2."""
    layer = factory()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    z, logdet = layer(x)
    doubled = 24 if isinstance(layer, Multiscale) else 16
    torch.testing.assert_close(logdet, torch.full((3,), doubled * math.log(2), dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(brute_force_logdets(FlatView(layer), x.reshape(3, -1)), logdet, atol=1e-12, rtol=0)
    x_back, logdet_inverse = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=0, rtol=0)
    torch.testing.assert_close(logdet_inverse, -logdet, atol=0, rtol=0)
