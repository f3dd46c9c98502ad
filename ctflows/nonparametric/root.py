"""Elementwise root finding for increasing scalar functions: Newton's method kept inside a bracket.

    solve g(x) = t  with g strictly increasing on [lo, hi] and g(lo) ≤ t ≤ g(hi)

Each iteration takes the Newton step x - (g(x) - t)/g'(x) when it lands inside the current bracket and
is at most half the step before last, and bisects otherwise, then shrinks the bracket to the side that still holds the root, so it
converges from any start (bisection's guarantee) and quadratically near the root (Newton's speed).
Iteration stops when every element's last step is at most ``tolerance · (1 + |x|)``; one more Newton step
is then taken, which leaves an error of order (that step)² — at the floor of the dtype. Press et al.,
Numerical Recipes §9.4 ("rtsafe") describe the same safeguard.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ctflows.core.tolerance import solver_tolerance
from ctflows.errors import SolverError

DEFAULT_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}
"""Per-dtype step tolerance: the closing Newton step squares it, so the root is at the dtype's floor."""

ValueAndSlope = Callable[[Tensor], tuple[Tensor, Tensor]]


def solve_increasing(
    fn: ValueAndSlope,
    target: Tensor,
    lo: Tensor,
    hi: Tensor,
    *,
    start: Tensor | None = None,
    tolerance: float | None = None,
    max_iterations: int = 200,
    owner: str = "solve_increasing",
) -> tuple[Tensor, int]:
    """Solve ``fn(x)[0] = target`` elementwise inside ``[lo, hi]``: ``-> (x, iterations)``.

    Args:
        fn: ``x -> (g(x), g'(x))``, elementwise, g strictly increasing; all tensors share one shape.
        target, lo, hi: the right-hand side and a bracket that holds the root.
        start: first iterate (default: the bracket's midpoint); clamped into the bracket.
        tolerance: relative step tolerance (default per dtype, :data:`DEFAULT_TOLERANCE`).
        max_iterations: raise :class:`SolverError` naming ``owner`` when they pass without convergence.

    Runs under ``no_grad``: callers that need gradients take one differentiable Newton step at the result.
    """
    tol = solver_tolerance(target.dtype, DEFAULT_TOLERANCE) if tolerance is None else float(tolerance)
    with torch.no_grad():
        lo, hi = lo.clone(), hi.clone()
        x = (lo + hi) / 2 if start is None else torch.minimum(torch.maximum(start, lo), hi)
        previous = hi - lo  # the step before last, as in rtsafe
        last = hi - lo
        for iteration in range(1, max_iterations + 1):
            value, slope = fn(x)
            below = value < target
            lo = torch.where(below, x, lo)
            hi = torch.where(below, hi, x)
            newton = x - (value - target) / slope
            # Newton is kept only inside the bracket and while its steps at least halve every other
            # iteration; otherwise bisection, so slow creeping toward a far root cannot stall the search.
            useful = (newton - x).abs() <= torch.maximum(previous / 2, tol * (1 + x.abs()))
            # An infinite slope gives newton = x, a zero step that would pass for convergence away from the root.
            inside = (newton >= lo) & (newton <= hi) & torch.isfinite(newton) & torch.isfinite(slope) & useful
            new = torch.where(inside, newton, (lo + hi) / 2)
            step = (new - x).abs()
            previous, last = last, step
            x = new
            # A zero-width bracket also ends the search: the root is pinned to rounding.
            if bool(((step <= tol * (1 + x.abs())) | (hi - lo <= tol * (1 + x.abs()))).all()):
                value, slope = fn(x)
                polished = x - (value - target) / slope
                # The closing Newton step may only be trusted while it stays in the bracket.
                x = torch.where((polished >= lo) & (polished <= hi), polished, x)
                return x, iteration + 1
    raise SolverError(
        f"{owner}: the inverse did not converge to relative tolerance {tol:g} in {max_iterations} iterations; "
        "check that the inputs are finite and the layer's parameters are finite"
    )
