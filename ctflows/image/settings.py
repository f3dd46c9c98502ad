"""Checks of the shapes image layers are built with: one message everywhere.

Whole-number settings (channels, widths, counts) and real numbers go through :mod:`ctflows.core.counts`;
this module adds what is particular to images, so that a bad setting fails when the layer is built, naming
the layer, instead of as a torch error at its first call (or never, as a silently truncated size).
"""
from __future__ import annotations

from ctflows.core.counts import positive_count
from ctflows.errors import ConfigurationError


def sizes(owner: str, shape: object, example: str = "(1, 28, 28)") -> tuple[int, ...]:
    """``shape`` as a tuple of ints >= 1 (a list, tuple or ``torch.Size``), else a :class:`ConfigurationError`.

    ``int(s)`` would truncate 1.5 to 1 and take True as 1: a size that is not a whole number is a mistake.
    """
    values = None
    if not isinstance(shape, (str, bytes)) and hasattr(shape, "__iter__"):
        try:
            values = tuple(shape)
        except TypeError:  # a 0-d tensor or NumPy array has __iter__ but cannot be iterated
            values = None
    if values is None:
        raise ConfigurationError(f"{owner}: shape must be a sequence of sizes such as {example}, got {shape!r}")
    try:
        return tuple(positive_count(owner, "shape", s) for s in values)
    except ConfigurationError:
        raise ConfigurationError(f"{owner}: every size in shape must be an int >= 1, got {values!r}") from None


def image_shape(owner: str, shape: object) -> tuple[int, int, int]:
    """``shape`` as an image shape ``(C, H, W)`` of ints >= 1, else a :class:`ConfigurationError`."""
    checked = sizes(owner, shape)
    if len(checked) != 3:
        raise ConfigurationError(f"{owner}: expected an image shape (C, H, W) such as (1, 28, 28), got {checked}")
    return checked  # type: ignore[return-value]
