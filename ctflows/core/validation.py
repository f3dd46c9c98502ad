"""Input checks shared by every layer, distribution and model.

They run once at the public entry point (``Transform.forward`` / ``Transform.inverse``, ``Flow.log_prob``),
not inside every sub-layer, so that a deep model pays for one check per call.

Policy for tensors that do not match the model: a floating input whose dtype differs from the model's
floating parameters, or any tensor on another device, is rejected rather than cast, because a silent cast
either loses precision (float64 -> float32) or hides a model that was never moved; ``fit`` and
``evaluate`` cast their batches to the model's dtype and device themselves.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ctflows.errors import ConfigurationError, InputError


def placement(module: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """The device of ``module``'s tensors and the dtype of its floating ones (``None`` where it has none).

    A layer without floating tensors (a permutation) accepts any floating dtype; one without any tensors
    accepts any device.
    """
    device = dtype = None
    for tensor in _tensors(module):
        if device is None:
            device = tensor.device
        if tensor.is_floating_point():
            return device, tensor.dtype
    return device, dtype


def _tensors(module: nn.Module) -> Iterator[Tensor]:
    yield from module.parameters()
    yield from module.buffers()


def batched_shape(event_shape: Sequence[int]) -> str:
    """The shape a batch of events has, as messages show it: ``[batch, 2, 3]``, or ``[batch]`` for scalar events."""
    return "[" + ", ".join(["batch", *map(str, event_shape)]) + "]"


def check_tensor(
    owner: str,
    x: Tensor,
    event_shape: tuple[int, ...] | None,
    *,
    name: str = "input",
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Raise :class:`InputError` unless ``x`` is a finite floating tensor of shape ``[batch, *event_shape]``.

    Args:
        owner: name of the layer or model doing the check (goes into the message).
        x: tensor to check.
        event_shape: expected trailing shape, or ``None`` to accept any.
        name: what ``x`` is called in the message.
        device: the owner's device; ``x`` must be on it (``None``: any device).
        dtype: the owner's floating dtype; ``x`` must have it (``None``: any floating dtype).
    """
    if not isinstance(x, Tensor):
        want = f", dtype={dtype}" if dtype is not None else ""
        raise InputError(
            f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__}; convert it with torch.as_tensor({name}{want})"
        )
    if not x.is_floating_point():
        want = f".to({dtype})" if dtype is not None else ".float() or .double()"
        raise InputError(f"{owner}: {name} must be a floating-point tensor, got dtype {x.dtype}; convert it with {want}")
    check_placement(owner, x, device, dtype, name=name)
    if event_shape is not None:
        expected = (len(event_shape) + 1, tuple(event_shape))
        if x.dim() != expected[0] or tuple(x.shape[1:]) != expected[1]:
            raise InputError(f"{owner}: {name} must have shape {batched_shape(event_shape)}, got {list(x.shape)}")
    if x.dim() == 0:
        raise InputError(f"{owner}: {name} is a scalar; it needs a batch dimension first, e.g. {name}.reshape(1, -1)")
    if x.shape[0] == 0:
        raise InputError(f"{owner}: {name} has an empty batch (shape {list(x.shape)}); pass at least one row")
    if x.device.type == "meta":
        return  # a meta tensor has a shape but no values, so there is nothing finite or not to count
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{owner}: {name} contains {bad} NaN or Inf value(s); clean the data before passing it in")


def check_placement(
    owner: str, x: Tensor, device: torch.device | None, dtype: torch.dtype | None, *, name: str = "input"
) -> None:
    """Raise :class:`InputError` if ``x`` is not on ``device`` or (being floating) not of ``dtype``."""
    if device is not None and x.device != device:
        raise InputError(
            f"{owner}: {name} is on device {x.device} but the layer is on {device}; "
            f"move one to the other, e.g. {name}.to({str(device)!r})"
        )
    if dtype is not None and x.is_floating_point() and x.dtype != dtype:
        raise InputError(
            f"{owner}: {name} has dtype {x.dtype} but the layer's parameters are {dtype}; "
            f"convert it with {name}.to({dtype}) or the model with .to({x.dtype})"
        )


def check_context(
    owner: str,
    context: Tensor | None,
    features: int | None,
    batch: int,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Raise :class:`InputError` unless ``context`` fits a layer that takes ``features`` context features.

    ``features=None`` means the owner takes no context, and then ``context`` must be ``None``: a context
    that would be silently ignored is almost always a model built without ``context_features``.
    """
    if features is None:
        if context is not None:
            shape = list(context.shape) if isinstance(context, Tensor) else type(context).__name__
            raise InputError(
                f"{owner}: takes no context but got one ({shape}); pass context=None, "
                "or build the model with context_features=... to make it conditional"
            )
        return
    if context is None:
        raise InputError(f"{owner}: is conditional and needs a context; pass one of shape [batch, {features}]")
    check_tensor(owner, context, (features,), name="context", device=device, dtype=dtype)
    if context.shape[0] != batch:
        raise InputError(
            f"{owner}: context has batch size {context.shape[0]} but the input has {batch}; give one context row per input row"
        )


def check_generator(owner: str, generator: object, device: torch.device | None = None) -> None:
    """Raise :class:`ConfigurationError` unless ``generator`` is ``None`` or a ``torch.Generator`` (on the
    type of ``device``, where the draws must be made on that device)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ConfigurationError(
            f"{owner}: generator must be a torch.Generator or None, got {type(generator).__name__} {generator!r}; "
            "for a seed s pass generator=torch.Generator().manual_seed(s)"
        )
    if device is not None and generator.device.type != device.type:
        raise ConfigurationError(
            f"{owner}: generator is on {generator.device} but the draws are made on {device}; "
            f"pass torch.Generator(device={device.type!r})"
        )


def check_call_signature(function: Callable[..., Any], arguments: int, message: str) -> None:
    """Raise :class:`ConfigurationError` (``message``, then the signature found) unless ``function`` can be called
    with ``arguments`` positional arguments: a user's callable is checked when it is handed over, not at its first
    call deep inside a solve or a training step."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # no signature to read (a builtin): it will tell for itself when called
        return
    try:
        signature.bind(*([None] * arguments))
    except TypeError:
        name = getattr(function, "__name__", type(function).__name__)
        raise ConfigurationError(f"{message}; its signature is {name}{signature}") from None


def check_instance(owner: str, name: str, value: object, kind: type, example: str) -> None:
    """Raise a :class:`ConfigurationError` naming ``owner`` and ``name`` unless ``value`` is a ``kind``, such as
    ``example``: at build time, rather than an AttributeError at the first call."""
    if not isinstance(value, kind):
        got = type(value).__name__
        raise ConfigurationError(f"{owner}: {name} must be a ctflows {kind.__name__} such as {example}, got {got}")
