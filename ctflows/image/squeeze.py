"""Squeeze: an invertible space-to-channel reshuffle (Dinh et al., RealNVP, 2017).

    [B, C, H, W] -> [B, 4C, H/2, W/2],   each 2×2 patch becomes 4 channels;   log|det J| = 0

It is a permutation of coordinates, so it preserves volume. Multiscale models squeeze before each scale so
that convolutions see a wider context and channel splits have channels to split.
"""
from __future__ import annotations

import numbers

from torch import Tensor

from ctflows.core.transform import Transform, zeros_logdet
from ctflows.core.validation import check_context, check_tensor
from ctflows.errors import ConfigurationError
from ctflows.image.settings import image_shape


def squeezed_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The shape after one squeeze (Dinh et al. 2017): ``(C, H, W) -> (4C, H/2, W/2)``; H and W must be even."""
    if isinstance(shape, numbers.Number):  # Squeeze(4) reads as a factor, but the factor is fixed at 2
        raise ConfigurationError(
            f"Squeeze: takes the input's image shape (C, H, W), e.g. Squeeze((1, 28, 28)), not a factor; got {shape!r}. "
            "Each squeeze moves 2×2 patches into channels; chain two for 4×4"
        )
    c, h, w = image_shape("Squeeze", shape)
    if h % 2 or w % 2:
        raise ConfigurationError(
            f"Squeeze: height and width must be even to squeeze 2×2 patches, got (C, H, W) = {(c, h, w)}; "
            "crop or pad the images to an even height and width"
        )
    return (4 * c, h // 2, w // 2)


class Squeeze(Transform):
    """Space-to-channel: ``x [B, C, H, W] -> z [B, 4C, H/2, W/2]``, log-det 0 (Dinh et al. 2017).

    Channel ``4c + 2i + j`` of the output holds pixel ``(2h + i, 2w + j)`` of input channel ``c``.
    ``event_shape`` is the input's; the inverse checks its input against :attr:`out_shape`.
    """

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.out_shape = squeezed_shape(shape)
        self.event_shape = image_shape("Squeeze", shape)

    def check(
        self, x: Tensor, context: Tensor | None, *, name: str = "input", inverse: bool = False, context_checked: bool = False
    ) -> None:
        check_tensor(type(self).__name__, x, self.out_shape if inverse else self.event_shape, name=name)
        if not context_checked:
            check_context(type(self).__name__, context, self.context_features, x.shape[0])

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        b, (c, h, w) = x.shape[0], self.event_shape
        z = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return z, zeros_logdet(x)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        b, (c, h, w) = z.shape[0], self.event_shape
        x = z.reshape(b, c, 2, 2, h // 2, w // 2).permute(0, 1, 4, 2, 5, 3).reshape(b, c, h, w)
        return x, zeros_logdet(z)

    def extra_repr(self) -> str:
        return f"{self.event_shape} -> {self.out_shape}"
