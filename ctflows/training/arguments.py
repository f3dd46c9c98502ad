"""``fit``'s argument checks, all made before the first (possibly costly) forward pass, and its optimizer table.

Every mistake is a :class:`~ctflows.errors.ConfigurationError` that names the argument and the value given.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ctflows.core.counts import check_seed, positive_count, real_setting
from ctflows.core.paths import as_path
from ctflows.core.span import check_spans_space
from ctflows.core.validation import check_call_signature
from ctflows.errors import ConfigurationError

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


def optimizer_class(optimizer: str | type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """The optimizer class for a name in :data:`OPTIMIZERS`, or the given ``torch.optim.Optimizer`` subclass."""
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]
    raise ConfigurationError(f"fit: optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer class, got {optimizer!r}")


class Counts(NamedTuple):
    """A ``fit`` call's numeric settings as Python ints and floats (a NumPy scalar saved in a training state
    would keep the state from being read back)."""

    steps: int | None
    seconds: float | None
    batch_size: int
    lr: float
    weight_decay: float
    clip_grad: float | None
    eval_every: int | None
    eval_samples: int


def check_arguments(
    steps: int | None, seconds: float | None, batch_size: int, lr: float, weight_decay: float, clip_grad: float | None,
    eval_data: Any, eval_every: int | None, eval_samples: int, regularization: dict[str, float] | None,
) -> Counts:
    """Budget, batch, learning rate, weight decay, clipping, evaluation cadence and regularization weights of a
    ``fit`` call; returns the numbers as Python ones."""
    if steps is None and seconds is None:
        raise ConfigurationError("fit: give a budget: steps, seconds, or both")
    if steps is not None:
        steps = positive_count("fit", "steps", steps)
    if seconds is not None:
        seconds = real_setting("fit", "seconds", seconds, "a positive number", lambda v: v > 0)
    batch_size = positive_count("fit", "batch_size", batch_size)
    lr = real_setting("fit", "lr", lr, "a positive number", lambda v: v > 0)
    weight_decay = real_setting("fit", "weight_decay", weight_decay, "a finite number >= 0", lambda v: v >= 0)
    if clip_grad is not None:  # inf: no clipping
        clip_grad = real_setting("fit", "clip_grad", clip_grad, "a positive number or None", lambda v: v > 0, infinite=True)
    if eval_every is not None:
        if eval_data is None:
            raise ConfigurationError("fit: eval_every is set but eval_data is None; pass held-out data to evaluate on")
        eval_every = positive_count("fit", "eval_every", eval_every)
    if eval_data is not None:
        eval_samples = positive_count("fit", "eval_samples", eval_samples)
    if regularization is not None and not isinstance(regularization, Mapping):
        raise ConfigurationError(
            f"fit: regularization must map names to weights, e.g. {{'kinetic_energy': 0.01}}, got {type(regularization).__name__}"
        )
    for name, weight in (regularization or {}).items():
        # real_setting refuses True as a weight (read as 1.0 before) and takes NumPy and 0-d torch numbers
        real_setting("fit", f"the regularization weight for {name!r}", weight, "a finite number")
    return Counts(steps, seconds, batch_size, lr, weight_decay, clip_grad, eval_every, eval_samples)


def check_model_and_seed(owner: str, flow: Any, *, trained: bool, seed: Any = None) -> int | None:
    """The model has ``log_prob`` (and, to be ``trained``, is a module with parameters); a seed torch can take (or
    None), returned as an int."""
    if not callable(getattr(flow, "log_prob", None)) or (trained and not isinstance(flow, torch.nn.Module)):
        raise ConfigurationError(f"{owner}: the model must be a ctflows Flow (a module with log_prob), got {type(flow).__name__}")
    return check_seed(owner, seed)


def check_eval_shape(eval_data: Any, x: torch.Tensor) -> None:
    """Held-out points (a Tensor, or the first of an ``(x, context)`` pair) must have the training points' shape."""
    points = eval_data[0] if isinstance(eval_data, (tuple, list)) else eval_data
    if isinstance(points, torch.Tensor) and tuple(points.shape[1:]) != tuple(x.shape[1:]):
        raise ConfigurationError(
            f"fit: eval_data has points of shape {list(points.shape[1:])} but the training data {list(x.shape[1:])}; "
            "give held-out points of the same kind"
        )


SPAN_CHECK_FEATURES = 256
"""Vector data of up to this many features is checked to span its space before training (:func:`check_training_points`):
the check costs N·D² operations, a few seconds for a million rows of 256."""


def check_training_points(points: Tensor | None) -> None:
    """Tensor training points ``[N, D]``, D <= :data:`SPAN_CHECK_FEATURES`, must not lie on a hyperplane
    (:func:`~ctflows.core.span.check_spans_space`): a flow fitted to them builds a spike there, and its loss keeps
    falling without bound. Densities and DataLoaders are not checked, nor images ``[N, C, H, W]`` (dequantize
    them: raw pixels have constant borders)."""
    if points is not None and points.dim() == 2 and points.shape[1] <= SPAN_CHECK_FEATURES:
        check_spans_space("fit", points)


def check_checkpointing(directory: Any, every: int | None, resume: bool) -> int | None:
    """``checkpoint_every`` and ``resume`` need somewhere to write and read: a ``checkpoint_dir``; returns
    ``checkpoint_every`` as an int."""
    if every is not None:
        every = positive_count("fit", "checkpoint_every", every)
    if (every is not None or resume) and directory is None:
        raise ConfigurationError("fit: checkpoint_every and resume need a checkpoint_dir to write to and read from")
    if directory is not None:
        path = as_path("fit", "checkpoint_dir", directory, "runs/a")
        if path.exists() and not path.is_dir():
            # found now, not when the first checkpoint is written (possibly at the end of the run)
            raise ConfigurationError(f"fit: checkpoint_dir {directory} is a file, not a directory; give a directory path")
    return every


def check_callback(callback: Any) -> None:
    """A callback is called after every step: a value that cannot be called is refused before the first."""
    if callback is not None and not callable(callback):
        raise ConfigurationError(
            f"fit: callback must be callable as callback(step, history) -> bool | None, got {type(callback).__name__}"
        )
    if callback is not None:
        check_call_signature(callback, 2, "fit: callback is called as callback(step, history) -> bool | None")


def check_device(owner: str, device: Any) -> torch.device:
    """``device`` as a ``torch.device`` that can hold the model here: a known type, and a GPU that exists.

    Checked before the model moves, so a typo or a CUDA request on a CPU-only build names the argument rather
    than surfacing as torch's own assertion from deep inside ``Module.to``.
    """
    if not isinstance(device, (str, torch.device)):
        raise ConfigurationError(f"{owner}: device must be a string such as 'cpu' or 'cuda:0', or a torch.device, got {device!r}")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigurationError(f"{owner}: device {device!r} is not a device torch knows; use 'cpu' or 'cuda[:N]'") from None
    if device.type == "meta":
        raise ConfigurationError(f"{owner}: device 'meta' holds no data to train or evaluate on; use 'cpu' or 'cuda[:N]'")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigurationError(f"{owner}: device {str(device)!r} asks for CUDA, but no CUDA device is available here; use 'cpu'")
        if device.index is not None and device.index >= count:
            raise ConfigurationError(f"{owner}: device {str(device)!r} does not exist: this machine has {count} CUDA device(s)")
    return device
