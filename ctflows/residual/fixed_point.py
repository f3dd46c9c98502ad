"""Inverting y = x + g(x) by fixed-point iteration, with implicit gradients.

    x_{k+1} = z - g(x_k),      ‖x_{k+1} - x*‖ ≤ Lip(g) ‖x_k - x*‖        (Banach; Behrmann et al. 2019, Alg. 1)

The iteration stops when every sample's step ‖x_{k+1} - x_k‖_∞ is at most ``tolerance · (1 + ‖x_k‖_∞)``;
its error is then at most Lip/(1 - Lip) times that. Gradients do not flow through the iterations:
one differentiable step x = z - g(x*) is taken at the solution and a hook replaces the gradient v
arriving at x by v (I + J_g)⁻¹ (the implicit function theorem), itself solved by the fixed-point
iteration aᵀ = vᵀ - aᵀ J_g, which contracts at the same rate (Bai et al. 2019 use the same device).
First derivatives only: the hook's result is not itself differentiable (no double backward through x).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ctflows.core.counts import positive_count, real_setting
from ctflows.core.tolerance import solver_tolerance
from ctflows.errors import ConfigurationError, SolverError

DEFAULT_TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-6}
"""Per-dtype default: near the floor of what the iteration can resolve (a few ulps of 1 + |x|) in each; the half
precisions' is :func:`ctflows.core.tolerance.solver_tolerance`'s."""


def default_tolerance(dtype: torch.dtype) -> float:
    """The fixed-point tolerance used when none is given: 1e-12 (float64), 1e-6 (float32), 1e-3 (float16), 0.031
    (bfloat16, 4 ulps of 1)."""
    return solver_tolerance(dtype, DEFAULT_TOLERANCE)


def _largest(x: Tensor) -> Tensor:
    """The largest |value| of each sample: ``[B, ...] -> [B]``."""
    return x.flatten(1).abs().amax(dim=1)


def _step_size(new: Tensor, old: Tensor) -> Tensor:
    # Per sample, relative to 1 + |x| so that large and small inputs stop at the same number of digits.
    return _largest(new - old) / (1 + _largest(old))


def _relative_change(new: Tensor, old: Tensor) -> Tensor:
    # Per sample, relative to |new| alone: the backward solve is linear in v, so its stopping test must not
    # depend on v's scale (relative to 1 + |a|, the per-sample gradients of a loss averaged over a large
    # batch, 1e-4 and below, were accepted after a few steps, up to 80% off in float32). Rows below
    # tiny/eps, where relative precision is lost to subnormals, are judged absolutely.
    finfo = torch.finfo(new.dtype)
    return _largest(new - old) / _largest(new).clamp_min(finfo.tiny / finfo.eps)


def check_settings(owner: str, tolerance: object, max_iterations: object) -> tuple[float | None, int]:
    """``(tolerance, max_iterations)`` as a float (or None) >= 0 and an int >= 2, else a ConfigurationError.

    A negative or NaN tolerance can never be met, and would end in a SolverError blaming convergence; the
    iteration judges convergence by the step between two iterates, so it needs at least 2.
    """
    if tolerance is not None:
        tolerance = real_setting(owner, "tolerance", tolerance, "a number >= 0, e.g. 1e-10 (or None: per dtype)", lambda t: t >= 0)
    max_iterations = positive_count(owner, "max_iterations", max_iterations)
    if max_iterations < 2:
        raise ConfigurationError(f"{owner}: max_iterations must be >= 2, got {max_iterations}")
    return tolerance, max_iterations


def fixed_point_inverse(
    g: Callable[[Tensor], Tensor],
    z: Tensor,
    *,
    tolerance: float | None = None,
    max_iterations: int = 1000,
    owner: str = "ResidualBlock",
    lipschitz_bound: float | None = None,
) -> tuple[Tensor, int, float]:
    """Solve ``x + g(x) = z`` for ``x`` [B, D]: ``-> (x, iterations, largest relative step at the end)``.

    ``x`` is differentiable in ``z`` and in g's parameters when autograd is on (implicit gradient).
    Raises :class:`SolverError` naming ``owner``, the tolerance, the iterations and the residual reached
    when ``max_iterations`` pass without convergence or the iterates stop being finite.
    """
    tolerance, max_iterations = check_settings(owner, tolerance, max_iterations)
    tol = default_tolerance(z.dtype) if tolerance is None else tolerance
    with torch.no_grad():
        x, residual, iterations = z - g(z), float("inf"), 1
        while iterations < max_iterations:
            new = z - g(x)
            iterations += 1
            steps = _step_size(new, x)
            x = new
            residual = float(steps.max())  # inf or nan as soon as any iterate is (one host sync per iteration)
            if not math.isfinite(residual):
                raise _error(owner, tol, iterations, max_iterations, residual, lipschitz_bound, "the iterates became non-finite")
            if residual <= tol:
                break
        else:
            raise _error(owner, tol, iterations, max_iterations, residual, lipschitz_bound, "it did not converge")
    if torch.is_grad_enabled():
        x = _attach_implicit_gradient(g, z, x, tol, max_iterations, owner, lipschitz_bound)
    return x, iterations, residual


def _attach_implicit_gradient(
    g: Callable[[Tensor], Tensor], z: Tensor, x_star: Tensor, tol: float, max_iterations: int, owner: str, bound: float | None
) -> Tensor:
    x = z - g(x_star)  # equal to x* up to the tolerance; carries the graph to z and g's parameters
    if not x.requires_grad:
        return x
    x0 = x_star.detach().requires_grad_()
    gx0 = g(x0)  # kept for the backward solve's vector-Jacobian products

    def backward_hook(v: Tensor | None) -> Tensor | None:
        if v is None:  # an undefined gradient (the caller used only other outputs)
            return None
        a = v
        for _ in range(max_iterations):
            (a_jac,) = torch.autograd.grad(gx0, x0, a, retain_graph=True)
            new = v - a_jac
            residual = float(_relative_change(new, a).max())
            a = new
            if residual <= tol:
                return a
        raise _error(owner, tol, max_iterations, max_iterations, residual, bound, "the implicit backward solve did not converge")

    x.register_hook(backward_hook)
    return x


def _error(owner: str, tol: float, iterations: int, limit: int, residual: float, bound: float | None, what: str) -> SolverError:
    lip = f" (the branch's Lipschitz bound is {bound:.4g})" if bound is not None else ""
    return SolverError(
        f"{owner}: the fixed-point inverse x = z - g(x) failed: {what} after {iterations} of at most {limit} "
        f"iterations; largest relative step {residual:.3g}, tolerance {tol:.3g}{lip}. The iteration contracts at "
        "the rate Lip(g), so lower the block's coefficient (e.g. 0.9) for faster, safer convergence, or raise "
        "max_iterations, or loosen the tolerance (float32 cannot resolve much below 1e-6)."
    )
