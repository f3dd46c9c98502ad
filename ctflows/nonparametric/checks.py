"""Argument checks of the fitted models, made before any work so that a bad call fails with a ctflows error.

Data that cannot be fitted is an :class:`InputError`, with a message that names the function and the argument,
shows what was given and says what to pass instead. (Settings go through ``core/counts``, the generator through
``core/validation``, as everywhere.)
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ctflows.core.validation import check_tensor
from ctflows.errors import InputError

FIT_DTYPES = (torch.float32, torch.float64)
"""Half precision is refused, as integer data is, rather than cast: CPU torch lacks some of the fits' ops in
float16/bfloat16 (ndtri), and where it has them the log-likelihoods that drive the stopping rule are too
coarse (the fit stops at once)."""

_SMALL = math.sqrt(torch.finfo(torch.float64).tiny)  # below it, squares are subnormal and lose their digits


def check_data(owner: str, data: Tensor) -> None:
    """Raise :class:`InputError` unless ``data`` is a finite float32/float64 tensor ``[N, D]`` with N, D >= 1
    whose squares neither overflow nor underflow float64."""
    check_tensor(owner, data, None, name="data")
    if data.dim() != 2:
        raise InputError(f"{owner}: data must have shape [N, D] (points in rows), got {list(data.shape)}")
    if data.shape[1] == 0:
        raise InputError(f"{owner}: data has no coordinates (shape {list(data.shape)}); pass points with D >= 1")
    if data.dtype not in FIT_DTYPES:
        raise InputError(
            f"{owner}: data has dtype {data.dtype}, too coarse to fit in (the fit needs float32 or float64); "
            "convert it with data.float() or data.double()"
        )
    # The fits form sums of squares in float64 (covariances, quantile spreads): beyond these bounds they
    # overflow or underflow, and the failure would surface later as a misleading "constant column" or NaN map.
    scale = float(data.abs().max())
    big = math.sqrt(torch.finfo(torch.float64).max / data.numel())
    if scale > big or 0 < scale < _SMALL:
        way = "overflow" if scale > big else "underflow"
        raise InputError(
            f"{owner}: data has values of magnitude up to {scale:.3g}, whose squares {way} float64 in the fit "
            f"(it needs a largest |value| in [{_SMALL:.1e}, {big:.1e}]); rescale it, e.g. (data - data.mean(0)) / data.std(0)"
        )
