"""Checks of what the plotting functions are given: tensors of points, named series, 2-D models (view bounds:
:func:`ctflows.grid.check_bounds`).

Each runs before a figure is made or a file written, and names the plotting function, the argument, what was
given and what to pass instead, where a user would otherwise get an IndexError from numpy or a ValueError from
matplotlib halfway through a picture, or a picture that is silently empty or mirrored.

Plotted values may be NaN or infinite: a diverged run is worth seeing, so values are not checked here.
"""
from __future__ import annotations

import reprlib
from typing import Mapping

import numpy as np
import torch
from torch import Tensor

from ctflows.errors import ConfigurationError, InputError

_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)  # the floating dtypes .numpy() can convert


def plot_tensor(owner: str, name: str, x: object, shape: tuple[str | int, ...]) -> Tensor:
    """``x`` detached on the CPU (bfloat16 as float32), if it is a tensor of ``shape`` (names: any size; ints: that size)
    with no empty axis.

    E.g. ``shape=("N", 2)`` for 2-D points ``[N, 2]``.
    """
    want = "[" + ", ".join(str(s) for s in shape) + "]"
    if not isinstance(x, Tensor):
        raise InputError(
            f"{owner}: {name} must be a torch.Tensor of shape {want}, got {type(x).__name__}; "
            f"convert it with torch.as_tensor({name})"
        )
    if x.dim() != len(shape) or any(isinstance(s, int) and x.shape[i] != s for i, s in enumerate(shape)):
        # The likeliest slip: points of a model in more than two dimensions, of which only two can be drawn.
        wider = shape[-1] == 2 and x.dim() == len(shape) and x.shape[-1] > 2
        hint = f"; to draw {x.shape[-1]}-D points pick two coordinates, e.g. {name}[..., :2]" if wider else ""
        raise InputError(f"{owner}: {name} must have shape {want}, got {list(x.shape)}{hint}")
    if x.numel() == 0:
        raise InputError(f"{owner}: {name} is empty (shape {list(x.shape)}); there is nothing to draw")
    x = x.detach().cpu()
    # NumPy has no bfloat16 (nor float8): .numpy() would raise a TypeError halfway through a picture.
    return x.float() if x.is_floating_point() and x.dtype not in _NUMPY_FLOATS else x


def check_curves(owner: str, curves: object) -> dict[str, np.ndarray]:
    """``{name: [K] float array}`` from a non-empty mapping of name -> per-step numbers (``None`` is a gap, as NaN; a
    tensor, or 0-d tensors, are read detached on the CPU).

    A series may be empty (a resumed run with no step left to take); the mapping may not (an empty figure).
    """
    if not isinstance(curves, Mapping):
        raise InputError(
            f"{owner}: curves must be a dict of name -> per-step values, e.g. {{'loss': history.losses}}, "
            f"got {type(curves).__name__}"
        )
    if not curves:
        raise InputError(f"{owner}: curves is empty, so there is nothing to draw; give at least one named series")
    series = {}
    for name, values in curves.items():
        try:
            # Tensors as plain numbers: a loss kept with its graph (losses.append(loss)) or on a GPU made numpy raise.
            array = None if isinstance(values, (str, bytes)) else np.asarray(
                [np.nan if v is None else v.detach().cpu() if isinstance(v, Tensor) else v for v in values], dtype=float)
        except (TypeError, ValueError):  # not iterable, not numbers, or rows of unequal length
            array = None
        if array is None or array.ndim != 1:
            raise InputError(
                f"{owner}: curves[{name!r}] must be a flat sequence of numbers, one per step (None or NaN for a gap), "
                f"got {reprlib.repr(values)}"
            )
        series[name] = array
    return series


def check_planar(owner: str, name: str, model: object) -> None:
    """A :class:`ConfigurationError` if ``model`` (or the object a bound method ``model`` belongs to, as for
    ``flow.log_prob``) has an ``event_shape`` other than ``(2,)``: the plots draw densities on a 2-D grid."""
    shape = getattr(getattr(model, "__self__", model), "event_shape", None)
    if shape is not None and tuple(shape) != (2,):
        raise ConfigurationError(
            f"{owner}: {name} belongs to a model of event shape {tuple(shape)}, but the plot evaluates it on a grid "
            "of 2-D points [N, 2]; pass a 2-D model, or a function of two coordinates that fixes the others"
        )
