"""Small image layers in a generic state, shared by the image property tests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ctflows.continuous import CNF
from ctflows.core import Transform
from ctflows.coupling import AffineCoupling
from ctflows.image import (
    ConvAffineCoupling, ConvTimeField, ImageView, Logit, Multiscale, PerPixel, Squeeze, actnorm_2d, glow_step,
    invertible_conv_1x1, level_shapes,
)

BATCH = 5


def tiny_cnf(shape: tuple[int, int, int]) -> ImageView:
    """A CNF block with a conv field, solved to float64 precision in eval().

    Direct backpropagation (no adjoint) lets the brute-force Jacobian run as one vectorized backward pass.
    """
    field = ConvTimeField(shape, (6,), activation="tanh")
    return ImageView(CNF(field, adjoint=False, eval_atol=1e-10, eval_rtol=1e-10), shape)


@dataclass(frozen=True)
class ImageCase:
    name: str
    factory: Callable[[], Transform]
    shape: tuple[int, int, int]
    unit_inputs: bool = False  # inputs must lie in [0, 1] (the logit)
    atol: float = 1e-9


CASES = [
    ImageCase("squeeze", lambda: Squeeze((2, 4, 2)), (2, 4, 2)),
    ImageCase("logit", lambda: Logit((1, 4, 4), alpha=0.05), (1, 4, 4), unit_inputs=True),
    ImageCase("actnorm_2d", lambda: actnorm_2d((2, 4, 4)), (2, 4, 4)),
    ImageCase("invertible_conv_1x1", lambda: invertible_conv_1x1((4, 2, 2)), (4, 2, 2)),
    # ActNorm's and the 1×1 conv's log-dets are the same at every pixel; a coupling's depend on the pixel's values.
    ImageCase("per_pixel_coupling", lambda: PerPixel(AffineCoupling(4, hidden=(8,)), (4, 2, 2)), (4, 2, 2)),
    ImageCase("conv_coupling_odd", lambda: ConvAffineCoupling((3, 2, 2), 8, parity=1), (3, 2, 2)),
    ImageCase("glow_step", lambda: glow_step((4, 2, 2), 8), (4, 2, 2)),
    ImageCase(
        "multiscale_glow",
        lambda: Multiscale((1, 4, 4), [glow_step(s, 8, parity=k) for k, s in enumerate(level_shapes((1, 4, 4), 2))]),
        (1, 4, 4),
    ),
    ImageCase("multiscale_cnf", lambda: Multiscale((1, 4, 4), [tiny_cnf(s) for s in level_shapes((1, 4, 4), 2)]), (1, 4, 4), atol=1e-7),
]


def build(case: ImageCase, dtype: torch.dtype = torch.float64) -> Transform:
    """The layer initialised on a batch (ActNorm) and its parameters perturbed, in eval()."""
    torch.manual_seed(0)
    layer = case.factory().to(dtype)
    layer.train()
    with torch.no_grad():
        layer(inputs(case, dtype, seed=2))
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer.eval()


def inputs(case: ImageCase, dtype: torch.dtype = torch.float64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if case.unit_inputs:
        return torch.rand(BATCH, *case.shape, generator=g, dtype=dtype)
    return torch.randn(BATCH, *case.shape, generator=g, dtype=dtype)
