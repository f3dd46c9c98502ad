"""Glow's step is ActNorm, then the invertible 1×1 convolution, then the coupling (Kingma & Dhariwal 2018), and its
1×1 convolution starts as one random rotation of the channels shared by every pixel."""
from __future__ import annotations

import torch

from ctflows.image import glow_step, invertible_conv_1x1


def scaled_channels(n: int = 32) -> torch.Tensor:
    """Images [n, 3, 4, 4] whose channels have means -3, 0, 5 and standard deviations 0.5, 2, 10."""
    x = torch.randn(n, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return x * torch.tensor([0.5, 2.0, 10.0], dtype=torch.float64).view(3, 1, 1) + torch.tensor([-3.0, 0.0, 5.0], dtype=torch.float64).view(3, 1, 1)


def test_a_new_invertible_1x1_conv_rotates_the_channels_of_every_pixel() -> None:
    """z[:, :, h, w] = W x[:, :, h, w] with one orthogonal W: each pixel keeps its channel norm, log|det| = 0, and the
    channels are mixed (z is not x)."""
    torch.manual_seed(0)
    layer = invertible_conv_1x1((3, 4, 4)).double()
    x = scaled_channels()
    z, logdet = layer(x)
    torch.testing.assert_close(z.norm(dim=1), x.norm(dim=1), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(logdet, torch.zeros_like(logdet), atol=1e-4, rtol=0)
    pixels_in, pixels_out = x.permute(0, 2, 3, 1).reshape(-1, 3), z.permute(0, 2, 3, 1).reshape(-1, 3)
    w = torch.linalg.lstsq(pixels_in, pixels_out).solution.T  # the one matrix that maps every pixel
    torch.testing.assert_close(pixels_in @ w.T, pixels_out, atol=1e-9, rtol=0)
    assert not torch.allclose(w, torch.eye(3, dtype=torch.float64), atol=0.1)


def test_glow_step_normalises_its_input_first_then_rotates_then_couples() -> None:
    """After its first training batch the step's first layer standardises that batch per channel (ActNorm sees the
    raw input, not rotated channels), and the step is coupling ∘ 1×1 conv ∘ ActNorm."""
    torch.manual_seed(0)
    step = glow_step((3, 4, 4), 8).double().train()
    x = scaled_channels()
    z, logdet = step(x)
    first, second, third = step.layers
    a, logdet_a = first(x)
    torch.testing.assert_close(a.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(a.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-4, rtol=0)
    b, logdet_b = second(a)
    c, logdet_c = third(b)
    torch.testing.assert_close(z, c, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet, logdet_a + logdet_b + logdet_c, atol=1e-10, rtol=0)
