"""Input checks shared by every layer, distribution and model.

They run once at the public entry point (``Transform.forward`` / ``Transform.inverse``, ``Flow.log_prob``),
not inside every sub-layer, so that a deep model pays for one check per call.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ctflows.errors import InputError


def check_tensor(
    owner: str,
    x: Tensor,
    event_shape: tuple[int, ...] | None,
    *,
    name: str = "input",
) -> None:
    """Raise :class:`InputError` unless ``x`` is a finite floating tensor of shape ``[batch, *event_shape]``.

    Args:
        owner: name of the layer or model doing the check (goes into the message).
        x: tensor to check.
        event_shape: expected trailing shape, or ``None`` to accept any.
        name: what ``x`` is called in the message.
    """
    if not isinstance(x, Tensor):
        raise InputError(f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise InputError(
            f"{owner}: {name} must be a floating-point tensor, got dtype {x.dtype}; convert it with .float() or .double()"
        )
    if event_shape is not None:
        expected = (len(event_shape) + 1, tuple(event_shape))
        if x.dim() != expected[0] or tuple(x.shape[1:]) != expected[1]:
            want = "[batch, " + ", ".join(str(s) for s in event_shape) + "]"
            raise InputError(f"{owner}: {name} must have shape {want}, got {list(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(f"{owner}: {name} has an empty batch (shape {list(x.shape)})")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{owner}: {name} contains {bad} NaN or Inf value(s); clean the data before passing it in")


def check_context(owner: str, context: Tensor | None, features: int | None, batch: int) -> None:
    """Raise :class:`InputError` unless ``context`` fits a layer that takes ``features`` context features.

    ``features=None`` means the owner ignores context, so any value (including ``None``) is accepted.
    """
    if features is None:
        return
    if context is None:
        raise InputError(f"{owner}: this model is conditional and needs a context of shape [batch, {features}]")
    check_tensor(owner, context, (features,), name="context")
    if context.shape[0] != batch:
        raise InputError(
            f"{owner}: context has batch size {context.shape[0]} but the input has {batch}; give one context row per input row"
        )
