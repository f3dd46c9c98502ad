"""The adjoint backward pass of a CNF solve, specialised to the CNF's augmented state: gradients by a second ODE solve.

    forward   s(t1) = s(t0) + ∫ f(t, s) dt                  s = (x, ℓ, r_1, …) as one tensor [B, D + 1 + R]
    backward  d/dt (x, a_x, a_θ) = (v, -aᵀ ∂f/∂x, -aᵀ ∂f/∂θ)  solved from t1 back to t0, a = (a_x, a_ℓ, a_r)
    dL/dt1 = a(t1)·f(t1, s(t1)),   dL/dt0 = -a(t0)·f(t0, s(t0)),   dL/dθ = a_θ(t0),   dL/dx(t0) = a_x(t0)

(Chen et al., "Neural ordinary differential equations", 2018). Both solves are ``torchdiffeq.odeint`` calls
on one flat tensor. ``torchdiffeq.odeint_adjoint`` solves the general problem; a CNF's state allows less:
the rates of ℓ and r_k never depend on ℓ or r_k, so their adjoints stay at dL/dℓ(t1), dL/dr(t1) and are not
integrated, and only the two end times are ever differentiated, so the time adjoint is a·f at the ends
instead of an integral. Fewer integrated states and no tuple packing per evaluation make each backward
evaluation cheaper (docs/benchmarks.md measures it); the gradients are the same to solver tolerance.

Step-size control with ``seminorm``: the forward error is measured on x only, the backward one on x and
a_x (the parameter adjoints are integrals that feed nothing back: Kidger, Chen & Lyons, 2021).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torchdiffeq import odeint

from ctflows.continuous.failure import check_output_gradient, solver_failures_reported


@dataclass
class AdjointProblem:
    """What both solves need besides the tensors: the right-hand side and the solver's settings."""

    dynamics: Any  # AugmentedDynamics: (t, (x,)) -> (v, div, *rates)
    method: str
    atol: float
    rtol: float
    options: dict[str, Any]  # the forward solve's torchdiffeq options (step_size, first_step)
    backward_options: dict[str, Any]  # the backward solve's
    seminorm: bool


def integrate_with_adjoint(
    problem: AdjointProblem, state0: tuple[Tensor, ...], start: Tensor, end: Tensor, params: tuple[Tensor, ...]
) -> tuple[Tensor, ...]:
    """Solve from ``start`` to ``end`` and return the final state, a tuple like ``state0 = (x [B, D], ℓ [B], …)``.

    Differentiable in ``state0``, ``start``, ``end`` and ``params`` through the adjoint solve above.
    """
    x0 = state0[0]
    s0 = torch.cat([x0, *(part.unsqueeze(1) for part in state0[1:])], dim=1)
    s1 = _AdjointSolve.apply(problem, x0.shape[1], start, end, s0, *params)
    return (s1[:, : x0.shape[1]], *s1[:, x0.shape[1] :].unbind(dim=1))


def _take_step_callbacks(rhs: Any, dynamics: Any, suffix: str) -> None:
    """Give ``rhs`` the dynamics' step callbacks named ``callback_*{suffix}`` under the names ``odeint`` looks up."""
    for name in ("callback_step", "callback_accept_step"):
        if hasattr(dynamics, name + suffix):
            setattr(rhs, name, getattr(dynamics, name + suffix))


class _FlatDynamics:
    """The augmented right-hand side on the flat state ``s [B, D + 1 + R]``."""

    def __init__(self, dynamics: Any, features: int) -> None:
        self.dynamics, self.features = dynamics, features
        _take_step_callbacks(self, dynamics, suffix="")

    def __call__(self, t: Tensor, s: Tensor) -> Tensor:
        v, *integrands = self.dynamics(t, (s[:, : self.features],))
        return torch.cat([v, *(i.unsqueeze(1) for i in integrands)], dim=1)


class _AdjointDynamics:
    """``d/dt (x, a_x, a_θ)`` on one flat vector ``[B·D | B·D | P]``; the adjoints of ℓ and r_k are held fixed."""

    def __init__(self, problem: AdjointProblem, shape: torch.Size, fixed_adjoints: Tensor, params: tuple[Tensor, ...]) -> None:
        self.problem, self.params = problem, params
        self.batch, self.features = shape
        self.fixed_adjoints = fixed_adjoints.unbind(dim=1)  # dL/dℓ, dL/dr_k, each [B]
        _take_step_callbacks(self, problem.dynamics, suffix="_adjoint")

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        n = self.batch * self.features
        x, a_x = y[:n].view(self.batch, self.features), y[n : 2 * n].view(self.batch, self.features)
        v, grad_x, grad_params = self.problem.dynamics.vector_jacobian_product(t, x, (a_x, *self.fixed_adjoints), self.params)
        return torch.cat([v.reshape(-1), grad_x.neg().reshape(-1), *(g.neg().reshape(-1) for g in grad_params)])


def rms(t: Tensor) -> Tensor:
    """Root mean square over all entries: the error norm every CNF solve applies to the parts it controls."""
    return t.pow(2).mean().sqrt()


def state_error_norm(features: int, seminorm: bool) -> Callable[[Tensor], Tensor]:
    """The forward solve's error norm on ``s [B, D + 1 + R]``: RMS over x only, or (no seminorm) the largest RMS of x, ℓ, r_k."""
    if seminorm:
        return lambda s: rms(s[:, :features])
    return lambda s: max(rms(part) for part in (s[:, :features], *s[:, features:].unbind(dim=1)))


def adjoint_error_norm(n: int, sizes: list[int], seminorm: bool) -> Callable[[Tensor], Tensor]:
    """The backward solve's error norm on ``[x (n) | a_x (n) | a_θ (sizes)]``: x and a_x, or (no seminorm) every part."""
    if seminorm:
        return lambda y: torch.maximum(rms(y[:n]), rms(y[n : 2 * n]))
    return lambda y: max(rms(part) for part in (y[:n], y[n : 2 * n], *y[2 * n :].split(sizes)) if part.numel())


class _AdjointSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, problem: AdjointProblem, features: int, start: Tensor, end: Tensor, s0: Tensor, *params: Tensor) -> Tensor:
        rhs = _FlatDynamics(problem.dynamics, features)
        options = dict(problem.options)
        # Without the seminorm every integrated quantity controls the step, as torchdiffeq's default does.
        options["norm"] = state_error_norm(features, problem.seminorm)
        times = torch.stack([start, end]).to(s0)
        solution = odeint(rhs, s0, times, rtol=problem.rtol, atol=problem.atol, method=problem.method, options=options)
        s1 = problem.dynamics.end_state(solution, problem.dynamics.direction)
        ctx.problem, ctx.features, ctx.rhs = problem, features, rhs
        keep_s0 = s0 if ctx.needs_input_grad[2] else s0.new_empty(0)
        ctx.save_for_backward(start, end, s1, keep_s0, *params)
        return s1

    @staticmethod
    @once_differentiable  # the backward solve builds no graph: a second derivative must fail, not come out zero
    def backward(ctx: Any, grad_s1: Tensor) -> tuple[Tensor | None, ...]:
        problem, features, rhs = ctx.problem, ctx.features, ctx.rhs
        start, end, s1, s0, *params = ctx.saved_tensors
        dynamics = problem.dynamics
        check_output_gradient(dynamics.settings.layer, grad_s1)
        dynamics.begin_backward_solve()
        n = s1.shape[0] * features
        adjoint_rhs = _AdjointDynamics(problem, s1[:, :features].shape, grad_s1[:, features:], tuple(params))
        sizes = [p.numel() for p in params]
        options = dict(problem.backward_options)
        options["norm"] = adjoint_error_norm(n, sizes, problem.seminorm)
        y1 = torch.cat([s1[:, :features].reshape(-1), grad_s1[:, :features].reshape(-1), s1.new_zeros(sum(sizes))])
        times = torch.stack([end, start]).to(s1)
        with solver_failures_reported(functools.partial(dynamics.failure, dynamics.backward_direction)), torch.no_grad():
            solution = odeint(adjoint_rhs, y1, times, rtol=problem.rtol, atol=problem.atol, method=problem.method, options=options)
        y0 = dynamics.end_state(solution, dynamics.backward_direction)
        # Fixed-grid solvers check nothing, and the seminorm hides the parameter adjoints from the step control.
        if not bool(torch.isfinite(y0).all()):
            raise dynamics.failure(dynamics.backward_direction, "the adjoint state became NaN or Inf")
        a0 = torch.cat([y0[n : 2 * n].view(-1, features), grad_s1[:, features:]], dim=1)
        with torch.no_grad():
            grad_end = (grad_s1 * rhs(end, s1)).sum().reshape(end.shape) if ctx.needs_input_grad[3] else None
            grad_start = -(a0 * rhs(start, s0)).sum().reshape(start.shape) if ctx.needs_input_grad[2] else None
        grad_params = [g.view_as(p).to(p.dtype) for g, p in zip(y0[2 * n :].split(sizes), params)]
        return (None, None, grad_start, grad_end, a0, *grad_params)
