"""Default stopping tolerances of the iterative solvers (fixed-point and Newton inverses), per floating dtype.

Each solver keeps its own table for float32 and float64, near the floor of what it can resolve; the half
precisions share one rule here.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch


def solver_tolerance(dtype: torch.dtype, per_dtype: Mapping[torch.dtype, float]) -> float:
    """``per_dtype[dtype]``, or for a dtype it lacks (float16, bfloat16) 1e-3, or 4 ulps of 1 where that is coarser.

    bfloat16's ulp of 1 is 0.0078: an iteration that settles within a few ulps could never meet 1e-3, and would
    run to its iteration limit and fail; its tolerance is 0.031.
    """
    if dtype in per_dtype:
        return per_dtype[dtype]
    eps = torch.finfo(dtype).eps
    return 1e-3 if eps < 1e-3 else 4 * eps
