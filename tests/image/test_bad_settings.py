"""Image layers refuse settings that cannot work when they are built, naming the layer, the setting and the fix.

Before, each case below either built a broken layer silently (a size of 1.5 truncated to 1, an infinite
scale bound that turns every output into NaN) or failed with a raw TypeError / ZeroDivisionError / torch
error, at construction or at the first call.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
import torch

from ctflows.errors import ConfigurationError, InputError
from ctflows.image import (
    ConcatSquashConv2d, ConvAffineCoupling, ConvTimeField, DequantizedImages, ImageView, Logit, Multiscale, PerPixel,
    Squeeze, actnorm_2d, dequantize, glow_step, level_shapes, multiscale_cnf, multiscale_glow, nats_to_bits_per_dim,
)
from ctflows.core import Chain
from ctflows.coupling import AffineCoupling
from ctflows.linear import ActNorm

BAD_SETTINGS: list[tuple[str, Callable[[], Any], str]] = [
    # ConvAffineCoupling: one empty half, non-image shapes, non-int widths, a bound that makes NaN
    ("coupling_one_channel", lambda: ConvAffineCoupling((1, 4, 4), 8), r"needs at least 2 channels.*squeeze the images first"),
    ("coupling_fractional_channels", lambda: ConvAffineCoupling((2.5, 4, 4), 8), r"ConvAffineCoupling: every size in shape must be an int >= 1, got \(2.5, 4, 4\)"),
    ("coupling_four_sizes", lambda: ConvAffineCoupling((2, 4, 4, 1), 8), r"ConvAffineCoupling: expected an image shape \(C, H, W\)"),
    ("coupling_zero_height", lambda: ConvAffineCoupling((2, 0, 4), 8), r"ConvAffineCoupling: every size in shape must be an int >= 1"),
    ("coupling_int_shape", lambda: ConvAffineCoupling(4, 8), r"ConvAffineCoupling: shape must be a sequence of sizes such as \(1, 28, 28\), got 4"),
    ("coupling_fractional_hidden", lambda: ConvAffineCoupling((2, 4, 4), 2.5), r"ConvAffineCoupling: hidden must be an int >= 1, got 2.5"),
    ("coupling_bool_hidden", lambda: ConvAffineCoupling((2, 4, 4), True), r"ConvAffineCoupling: hidden must be an int >= 1, got True"),
    ("coupling_str_hidden", lambda: ConvAffineCoupling((2, 4, 4), "8"), r"ConvAffineCoupling: hidden must be an int >= 1, got '8'"),
    ("coupling_tuple_hidden", lambda: multiscale_glow((1, 8, 8), hidden=(8, 8)), r"ConvAffineCoupling: hidden must be an int >= 1, got \(8, 8\)"),
    ("coupling_infinite_bound", lambda: ConvAffineCoupling((2, 4, 4), 8, scale_bound=math.inf), r"scale_bound must be a finite number > 0, e.g. 3.0, got inf"),
    ("coupling_str_bound", lambda: ConvAffineCoupling((2, 4, 4), 8, scale_bound="3"), r"scale_bound must be a finite number > 0"),
    ("coupling_zero_bound", lambda: ConvAffineCoupling((2, 4, 4), 8, scale_bound=0.0), r"scale_bound must be a finite number > 0, e.g. 3.0, got 0.0"),  # s = 0·tanh(ŝ/0): NaN
    ("coupling_negative_bound", lambda: ConvAffineCoupling((2, 4, 4), 8, scale_bound=-1.0), r"scale_bound must be a finite number > 0"),
    # Squeeze: its argument is the image shape (the factor is always 2), with even H and W
    ("squeeze_factor", lambda: Squeeze(4), r"Squeeze: takes the input's image shape \(C, H, W\), e\.g\. Squeeze\(\(1, 28, 28\)\), not a factor; got 4"),
    ("squeeze_fractional_channels", lambda: Squeeze((1.5, 4, 4)), r"Squeeze: every size in shape must be an int >= 1, got \(1.5, 4, 4\)"),
    ("squeeze_str_size", lambda: Squeeze(("1", 4, 4)), r"Squeeze: every size in shape must be an int >= 1"),
    ("squeeze_odd_height", lambda: Squeeze((1, 5, 4)), r"height and width must be even.*\(1, 5, 4\); crop or pad the images to an even height and width"),
    ("squeeze_odd_width", lambda: Squeeze((1, 4, 5)), r"height and width must be even.*\(1, 4, 5\)"),
    ("squeeze_numpy_factor", lambda: Squeeze(np.int64(2)), r"Squeeze: takes the input's image shape \(C, H, W\).*not a factor; got np.int64\(2\)"),
    ("squeeze_float_factor", lambda: Squeeze(2.0), r"Squeeze: takes the input's image shape \(C, H, W\).*not a factor; got 2.0"),
    # a shape that only looks like one: bytes iterate as ints, 0-d arrays have __iter__ but cannot be iterated (was a TypeError)
    ("squeeze_bytes_shape", lambda: Squeeze(b"\x01\x04\x04"), r"Squeeze: shape must be a sequence of sizes"),
    ("squeeze_0d_tensor_shape", lambda: Squeeze(torch.tensor(4)), r"Squeeze: shape must be a sequence of sizes such as \(1, 28, 28\), got tensor\(4\)"),
    ("logit_0d_array_shape", lambda: Logit(np.array(16)), r"Logit: shape must be a sequence of sizes such as \(1, 28, 28\), got array\(16\)"),
    ("squeeze_two_sizes", lambda: Squeeze((4, 4)), r"Squeeze: expected an image shape \(C, H, W\) such as \(1, 28, 28\), got \(4, 4\)"),
    # Multiscale: a whole number of levels, and only as many as the images can be halved
    ("levels_fractional", lambda: level_shapes((1, 8, 8), 2.5), r"Multiscale: levels must be an int >= 1, got 2.5"),
    ("levels_bool", lambda: multiscale_glow((1, 8, 8), levels=True), r"Multiscale: levels must be an int >= 1, got True"),
    ("levels_too_many", lambda: level_shapes((1, 8, 8), 4), r"level 4 of 4 would squeeze .*even; images \(1, 8, 8\) allow at most 3 level\(s\)"),
    ("levels_too_many_for_the_width", lambda: level_shapes((1, 8, 4), 3), r"level 3 of 3 would squeeze \(C, H, W\) = \(4, 2, 1\).*allow at most 2 level\(s\)"),
    ("levels_too_many_after_one", lambda: level_shapes((1, 4, 2), 2), r"level 2 of 2 would squeeze \(C, H, W\) = \(2, 2, 1\).*allow at most 1 level\(s\)"),
    # a level built for the wrong shape (here the unsqueezed one) or taking a context it would never be given
    ("multiscale_level_shape", lambda: Multiscale((1, 4, 4), [glow_step((4, 4, 4), 8)]), r"Multiscale: level 0 works on \(4, 4, 4\) but receives \(4, 2, 2\)"),
    # a level that changes the shape: forward used to run on misread tensors and the inverse to fail in a conv
    ("multiscale_level_changes_shape", lambda: Multiscale((1, 4, 4), [Chain(Squeeze((4, 2, 2)), ConvAffineCoupling((16, 1, 1), 4)), glow_step((8, 1, 1), 4)]),
     r"Multiscale: level 0 turns \(4, 2, 2\) into \(16, 1, 1\), but each level must keep its shape"),
    ("multiscale_conditional_level", lambda: Multiscale((1, 4, 4), [ImageView(AffineCoupling(16, hidden=(8,), context_features=2), (4, 2, 2))]), r"Multiscale: conditional levels are not supported"),
    ("multiscale_no_levels", lambda: Multiscale((1, 8, 8), []), r"Multiscale: need at least one level transform, got none"),
    ("multiscale_int_shape", lambda: multiscale_cnf(8), r"multiscale_cnf: shape must be a sequence of sizes"),
    # Fields, views, logit, Glow's per-pixel layers and the loader
    ("conv_zero_channels", lambda: ConcatSquashConv2d(0, 4, 1), r"ConcatSquashConv2d: in_channels must be an int >= 1, got 0"),
    ("conv_fractional_kernel", lambda: ConcatSquashConv2d(1, 4, 1, kernel_size=3.0), r"ConcatSquashConv2d: kernel_size must be an int >= 1, got 3.0"),
    ("field_int_hidden", lambda: ConvTimeField((1, 4, 4), 8), r"ConvTimeField: hidden must be a sequence of widths such as \(64, 64\), got 8"),
    ("field_nan_init_scale", lambda: ConvTimeField((1, 4, 4), (4,), init_scale=math.nan), r"ConvTimeField: init_scale must be a finite number"),
    ("field_fractional_channels", lambda: ConvTimeField((1.5, 4, 4), (4,)), r"ConvTimeField: every size in shape must be an int >= 1"),
    ("logit_str_alpha", lambda: Logit((1, 4, 4), "0.05"), r"Logit: alpha must be in \[0, 0.5\) \(e.g. 0.05\), got '0.05'"),
    ("logit_half_alpha", lambda: Logit((1, 4, 4), 0.5), r"Logit: alpha must be in \[0, 0.5\).*got 0.5"),  # 1 - 2α = 0: no map at all
    ("logit_negative_alpha", lambda: Logit((1, 4, 4), -0.1), r"Logit: alpha must be in \[0, 0.5\).*got -0.1"),  # s leaves [0, 1]
    ("logit_fractional_shape", lambda: Logit((1.5, 4)), r"Logit: every size in shape must be an int >= 1, got \(1.5, 4\)"),
    ("per_pixel_fractional_shape", lambda: PerPixel(ActNorm(1), (1.5, 4, 4)), r"PerPixel: every size in shape must be an int >= 1"),
    ("image_view_none_shape", lambda: ImageView(ActNorm(16), None), r"ImageView: shape must be a sequence of sizes"),
    ("image_view_wrong_width", lambda: ImageView(ActNorm(15), (1, 4, 4)), r"ImageView: the wrapped layer has event shape \(15,\), expected \(16,\)"),
    ("per_pixel_wrong_channels", lambda: PerPixel(ActNorm(3), (4, 2, 2)), r"PerPixel: the wrapped layer has event shape \(3,\), expected \(4,\) channels"),
    ("per_pixel_conditional", lambda: PerPixel(AffineCoupling(4, hidden=(8,), context_features=2), (4, 2, 2)), r"PerPixel: conditional layers are not supported"),
    ("actnorm_2d_int_shape", lambda: actnorm_2d(4), r"actnorm_2d: shape must be a sequence of sizes"),
    ("glow_step_str_shape", lambda: glow_step("abc", 8), r"glow_step: shape must be a sequence of sizes"),
    ("loader_fractional_batch", lambda: DequantizedImages(torch.zeros(4, 1, 2, 2), 4, batch_size=2.5), r"DequantizedImages: batch_size must be an int >= 1, got 2.5"),
    ("loader_one_level", lambda: DequantizedImages(torch.zeros(4, 1, 2, 2), 1), r"^DequantizedImages: levels must be an int >= 2"),
    # torch took -1 as the seed 2^64 - 1 without a word, and failed on 3.5 and True with a RuntimeError of its own
    *[(f"loader_seed_{seed!r}", lambda seed=seed: DequantizedImages(torch.zeros(4, 1, 2, 2), 4, seed=seed),
       rf"DequantizedImages: seed must be a whole number from 0 to 2\^63 - 1, or None, got {seed!r}") for seed in (-1, 3.5, True, 2**63)],
]


@pytest.mark.parametrize("build, match", [pytest.param(b, m, id=name) for name, b, m in BAD_SETTINGS])
def test_image_layers_refuse_bad_settings_when_built(build: Callable[[], Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        build()


@pytest.mark.parametrize("dims, levels, match", [
    (0, 256, r"nats_to_bits_per_dim: dims must be an int >= 1, got 0"),  # was a ZeroDivisionError
    (-3, 256, r"dims must be an int >= 1, got -3"),  # was a number that is no bits per dimension
    (2.5, 256, r"dims must be an int >= 1, got 2.5"),
    (True, 256, r"dims must be an int >= 1, got True"),
    (16, 1, r"nats_to_bits_per_dim: levels must be an int >= 2 \(e.g. 256 for 8-bit images\), got 1"),
    (16, 0, r"levels must be an int >= 2"),  # was a math domain error
    (16, 2.5, r"levels must be an int >= 2"),
])
def test_bits_per_dim_conversion_refuses_dims_and_levels_that_make_no_sense(dims: Any, levels: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        nats_to_bits_per_dim(10.0, dims, levels)


def test_a_conv_field_refuses_a_state_of_the_wrong_width_instead_of_reading_it_as_more_images() -> None:
    field = ConvTimeField((1, 4, 4), (4,))
    with pytest.raises(InputError, match=r"ConvTimeField: x must have shape \[batch, 16\].*got \[2, 32\]"):
        field(torch.tensor(0.0), torch.randn(2, 32))  # reshape(-1, 1, 4, 4) used to give 4 "images" back


def test_valid_settings_in_every_usual_spelling_still_build() -> None:
    assert Squeeze(torch.Size([1, 4, 4])).out_shape == (4, 2, 2)
    assert Squeeze([np.int64(1), 4, 4]).event_shape == (1, 4, 4)
    assert ConvAffineCoupling((3, 2, 2), np.int64(8), parity=1, scale_bound=2).event_shape == (3, 2, 2)
    assert level_shapes((1, 8, 8), 3) == [(4, 4, 4), (8, 2, 2), (16, 1, 1)]
    assert nats_to_bits_per_dim(0.0, 16, 256) == pytest.approx(8.0)
    assert math.isnan(nats_to_bits_per_dim(math.nan, 16, 256))  # a diverged model reports NaN, it is not refused
    assert ConvTimeField((1, 4, 4), ())(torch.tensor(0.0), torch.randn(2, 16)).shape == (2, 16)
    loader = DequantizedImages(torch.zeros(4, 1, 2, 2), 4, seed=np.int64(3))
    assert type(loader.seed) is int and torch.equal(torch.cat(list(loader)), torch.cat(list(DequantizedImages(torch.zeros(4, 1, 2, 2), 4, seed=3))))


@pytest.mark.parametrize("levels", [np.int64(4), torch.tensor(4)])
def test_levels_of_numpy_or_torch_are_taken_as_the_int_they_equal(levels: Any) -> None:
    """levels is a count like any other: a NumPy or 0-d torch 4 gives the same points and bits as the int 4."""
    images = torch.randint(0, 4, (6, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    same = dequantize(images, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(dequantize(images, levels, generator=torch.Generator().manual_seed(1)), same)
    assert DequantizedImages(images, levels).levels == 4 and type(DequantizedImages(images, levels).levels) is int
    assert nats_to_bits_per_dim(3.0, 4, levels) == nats_to_bits_per_dim(3.0, 4, 4)
    with pytest.raises(ConfigurationError, match="dequantize: levels must be an int >= 2"):
        dequantize(images, np.bool_(True))


def test_a_loader_without_a_seed_draws_one_and_restarts_on_the_same_batches() -> None:
    """seed=None (as fit's) draws a seed from torch's generator once: restarted() repeats that loader's batches."""
    images = torch.randint(0, 4, (6, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    loader = DequantizedImages(images, 4, batch_size=4, seed=None)
    assert type(loader.seed) is int and 0 <= loader.seed < 2**62
    first = torch.cat(list(loader))
    assert torch.equal(torch.cat(list(loader.restarted())), first)
    assert torch.equal(first, torch.cat(list(DequantizedImages(images, 4, batch_size=4, seed=loader.seed))))
