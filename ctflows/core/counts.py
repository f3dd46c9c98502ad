"""The checks of numeric settings: whole numbers (a number of blocks, iterations, kernels) and finite reals in a
range (a bandwidth, a bound); one message everywhere."""
from __future__ import annotations

import math
import operator
from typing import Callable

import numpy as np
import torch

from ctflows.errors import ConfigurationError, CtflowsError


def _is_boolean(value: object) -> bool:
    """A Python, NumPy or torch boolean (a 0-d NumPy array too): int() and float() would read True as 1, a flag where a
    number belongs."""
    return (
        isinstance(value, (bool, np.bool_))
        or (isinstance(value, torch.Tensor) and value.dtype == torch.bool)
        or (isinstance(value, np.ndarray) and value.dtype == np.bool_)
    )


def _is_complex(value: object) -> bool:
    """A complex number of any kind (Python, NumPy, torch, a 0-d array): float() drops a NumPy complex's imaginary part
    with only a warning."""
    if isinstance(value, torch.Tensor):
        return value.is_complex()
    return isinstance(value, (complex, np.complexfloating)) or (isinstance(value, np.ndarray) and np.iscomplexobj(value))


def whole_number(value: object) -> int | None:
    """``value`` as an int if it is one whole number (Python, numpy, 0-d torch integers), else ``None``: not a bool,
    a float, or a tensor with dimensions (operator.index reads a one-element tensor of any shape as its number, and a
    boolean tensor as 0 or 1)."""
    if _is_boolean(value) or (isinstance(value, torch.Tensor) and value.dim() > 0):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def whole_setting(
    owner: str, name: str, value: object, want: str, ok: Callable[[int], bool] = lambda v: True,
    error: type[CtflowsError] = ConfigurationError,
) -> int:
    """``value`` as an int if it is a whole number (:func:`whole_number`) with ``ok(value)`` true, else ``error`` saying
    that ``owner``'s ``name`` must be ``want`` (e.g. ``"an int >= 2"``); the counterpart of :func:`real_setting`."""
    count = whole_number(value)
    if count is None or not ok(count):
        raise error(f"{owner}: {name} must be {want}, got {value!r}")
    return count


def positive_count(owner: str, name: str, value: object, error: type[CtflowsError] = ConfigurationError) -> int:
    """``value`` as an int if it is a whole number >= 1, else ``error`` naming ``owner`` and ``name`` (a
    :class:`~ctflows.errors.ConfigurationError` for a setting; an ``InputError`` for a call's input)."""
    return whole_setting(owner, name, value, "an int >= 1", lambda v: v >= 1, error)


def non_negative_count(owner: str, name: str, value: object, error: type[CtflowsError] = ConfigurationError) -> int:
    """``value`` as an int if it is a whole number >= 0, else ``error`` naming ``owner`` and ``name`` (an
    :class:`~ctflows.errors.InputError` where the number is a call's input, as a sample size)."""
    return whole_setting(owner, name, value, "a non-negative int", lambda v: v >= 0, error)


def check_seed(owner: str, seed: object) -> int | None:
    """``None``, or ``seed`` as an int from 0 to 2^63 - 1 (torch takes seeds below 2^64, and callers derive
    seed + 1 and seed + 2), else a :class:`ConfigurationError` naming ``owner``: torch would read 3.5 as 3 and True
    as 1 without a word."""
    if seed is None:
        return None
    return whole_setting(owner, "seed", seed, "a whole number from 0 to 2^63 - 1, or None", lambda v: 0 <= v < 2**63)


def optional_count(owner: str, name: str, value: object) -> int | None:
    """``None``, or ``value`` as by :func:`positive_count` (a context width of 0 would build a layer that cannot run)."""
    return None if value is None else positive_count(owner, name, value)


def widths(owner: str, hidden: object) -> tuple[int, ...]:
    """Hidden layer widths: a sequence of ints >= 1 (possibly empty), e.g. ``(64, 64)``; else a ConfigurationError."""
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise ConfigurationError(f"{owner}: hidden must be a sequence of widths such as (64, 64), got {hidden!r}")
    return tuple(positive_count(owner, "each hidden width", width) for width in hidden)


def real_setting(
    owner: str, name: str, value: object, want: str, ok: Callable[[float], bool] = lambda v: True, *,
    infinite: bool = False,
) -> float:
    """``value`` as a float if it is one finite real number (not a bool or complex number of any kind, a string, or an
    array or tensor with dimensions, which float() reads when it holds one element) with ``ok(value)`` true.

    Else a :class:`ConfigurationError` saying that ``name`` must be ``want`` (e.g. ``"a number > 0, e.g. 3.0"``):
    a NaN or infinite setting (say a scale bound) would turn every output into NaN without an error. With
    ``infinite``, ±inf passes to ``ok`` (where it means "no limit"); NaN never does.
    """
    number = None
    plain = not (_is_boolean(value) or _is_complex(value) or isinstance(value, (str, bytes)))
    if plain and getattr(value, "ndim", 0) == 0:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, RuntimeError):  # a tensor of several numbers (ValueError or RuntimeError)
            number = None
    if number is None or math.isnan(number) or (math.isinf(number) and not infinite) or not ok(number):
        raise ConfigurationError(f"{owner}: {name} must be {want}, got {value!r}")
    return number
