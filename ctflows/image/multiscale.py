"""The multiscale architecture: squeeze, transform, factor out half the channels, repeat (Dinh et al. 2017).

    level k:  h -> squeeze -> f_k -> (z_k, h)  split along channels;  the last level keeps everything

Factored-out halves go straight to the base (a standard normal), so later levels work on fewer
dimensions; Glow (Kingma & Dhariwal 2018) and FFJORD's image models (Grathwohl et al. 2019) use the same
scheme. The latent is all the pieces flattened and concatenated, reshaped to the input's shape: a fixed
permutation of coordinates, so the base is N(0, I) on the input shape and sampling needs no bookkeeping.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from ctflows.core.counts import positive_count
from ctflows.core.transform import Transform, output_shape, zeros_logdet
from ctflows.errors import ConfigurationError
from ctflows.image.settings import image_shape
from ctflows.image.squeeze import Squeeze, squeezed_shape


def level_shapes(shape: tuple[int, int, int], levels: int) -> list[tuple[int, int, int]]:
    """The shape each level's transform sees (RealNVP's multiscale scheme, Dinh et al. 2017).

    Level k squeezes ``(C, H, W) -> (4C, H/2, W/2)``; all but the last then keep half the channels.

    E.g. ``(1, 8, 8)`` with 2 levels: ``[(4, 4, 4), (8, 2, 2)]``.
    """
    levels = positive_count("Multiscale", "levels", levels)
    shape = image_shape("Multiscale", shape)
    shapes, current = [], shape
    for k in range(levels):
        if current[1] % 2 or current[2] % 2:  # say how many levels the images allow, not only that a squeeze fails
            change = f"images {shape} allow at most {k} level(s)" if k else "crop or pad the images to an even height and width"
            raise ConfigurationError(
                f"Multiscale: level {k + 1} of {levels} would squeeze (C, H, W) = {current}, but height and width must be even; {change}"
            )
        current = squeezed_shape(current)
        shapes.append(current)
        current = (current[0] // 2, *current[1:])
    return shapes


class Multiscale(Transform):
    """Multiscale flow ``x [B, C, H, W] -> z [B, C, H, W]`` over ``len(levels)`` scales (RealNVP, 2017).

    Args:
        shape: input image shape ``(C, H, W)``.
        levels: one shape-preserving transform per level, on the shapes given by :func:`level_shapes`
            (e.g. a chain of CNF blocks, or of Glow steps).

    log|det J| = Σ_k log|det J_{f_k}|; squeezes, splits and the final reshuffle are permutations.
    """

    def __init__(self, shape: tuple[int, int, int], levels: Sequence[Transform]) -> None:
        super().__init__()
        self.event_shape = image_shape("Multiscale", shape)
        if len(levels) == 0:
            raise ConfigurationError("Multiscale: need at least one level transform, got none; pass one per level_shapes(shape, levels)")
        self.shapes = level_shapes(self.event_shape, len(levels))
        for k, (level, expected) in enumerate(zip(levels, self.shapes)):
            if level.event_shape is not None and tuple(level.event_shape) != expected:
                raise ConfigurationError(f"Multiscale: level {k} works on {tuple(level.event_shape)} but receives {expected}; build it for level_shapes(shape, {len(levels)})")
            # A level that reshapes (e.g. ends in a Squeeze) would have the next squeeze and split misread its output.
            if output_shape(level) not in (None, expected):
                raise ConfigurationError(f"Multiscale: level {k} turns {expected} into {output_shape(level)}, but each level must keep its shape; leave the squeezes to Multiscale")
        self.levels = nn.ModuleList(levels)
        before_squeeze = [self.event_shape, *[(c // 2, h, w) for c, h, w in self.shapes[:-1]]]
        self.squeezes = nn.ModuleList(Squeeze(s) for s in before_squeeze)
        contexts = {level.context_features for level in levels} - {None}
        if contexts:
            raise ConfigurationError("Multiscale: conditional levels are not supported")

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        total, pieces, h = zeros_logdet(x), [], x
        for k, (squeeze, level) in enumerate(zip(self.squeezes, self.levels)):
            h, _ = squeeze._forward(h, None)
            h, logdet = level._forward(h, None)
            total = total + logdet
            if k < len(self.levels) - 1:
                half = h.shape[1] // 2
                pieces.append(h[:, :half].reshape(h.shape[0], -1))
                h = h[:, half:]
        pieces.append(h.reshape(h.shape[0], -1))
        return torch.cat(pieces, dim=1).reshape(x.shape), total

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        sizes = [c // 2 * h * w for c, h, w in self.shapes[:-1]] + [math.prod(self.shapes[-1])]
        pieces = torch.split(z.reshape(z.shape[0], -1), sizes, dim=1)
        total, b = zeros_logdet(z), z.shape[0]
        h = pieces[-1].reshape(b, *self.shapes[-1])
        for k in reversed(range(len(self.levels))):
            if k < len(self.levels) - 1:
                c, hh, ww = self.shapes[k]
                h = torch.cat([pieces[k].reshape(b, c // 2, hh, ww), h], dim=1)
            h, logdet = self.levels[k]._inverse(h, None)
            total = total + logdet
            h, _ = self.squeezes[k]._inverse(h, None)
        return h, total

    def extra_repr(self) -> str:
        return f"shape={self.event_shape}, level_shapes={self.shapes}"
