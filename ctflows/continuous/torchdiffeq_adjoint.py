"""torchdiffeq's ``odeint_adjoint`` for ``CNF(adjoint="torchdiffeq")``, its backward solve's failures made SolverErrors.

``odeint_adjoint`` runs its backward solve inside autograd's engine, out of the CNF's reach: a scipy solve
that gives up there, or one of torchdiffeq's own asserts, surfaces in ``loss.backward()`` as a bare
RuntimeError or AssertionError. Wrapping the whole solve in one autograd Function puts the backward solve in
our own ``backward``, where it is reported as :mod:`ctflows.continuous.adjoint` reports its own: the
layer, the adjoint solve, the tolerances and the work done. The gradients are torchdiffeq's, unchanged.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torchdiffeq import odeint_adjoint

from ctflows.continuous.failure import check_output_gradient, solver_failures_reported


def integrate_with_torchdiffeq_adjoint(
    dynamics: Any, state0: tuple[Tensor, ...], times: Tensor, params: tuple[Tensor, ...], **solve: Any
) -> tuple[Tensor, ...]:
    """The final state of ``odeint_adjoint(dynamics, state0, times, adjoint_params=params, **solve)``.

    ``state0``: the augmented state, a tuple ``(x [B, D], ℓ [B], r_1 [B], …)``; ``times [2]``. Differentiable in
    ``times``, ``state0`` and ``params`` through torchdiffeq's adjoint.
    """
    return _ReportedAdjointSolve.apply(dynamics, solve, len(state0), times, *state0, *params)


class _ReportedAdjointSolve(torch.autograd.Function):
    """An outer node around the inner graph that ``odeint_adjoint`` builds; its backward runs that graph."""

    @staticmethod
    def forward(
        ctx: Any, dynamics: Any, solve: dict[str, Any], parts: int, times: Tensor, *tensors: Tensor
    ) -> tuple[Tensor, ...]:
        # The times and state are detached so that the inner graph ends at them; the parameters are the module's
        # own leaves (the field reads them, not copies), so the inner graph reaches them and stops there too.
        times, *state0 = (t.detach().requires_grad_(t.requires_grad) for t in (times, *tensors[:parts]))
        params = tensors[parts:]
        with torch.enable_grad():
            final = tuple(s[-1] for s in odeint_adjoint(dynamics, tuple(state0), times, adjoint_params=params, **solve))
        ctx.dynamics, ctx.final, ctx.inputs = dynamics, final, (times, *state0, *params)
        return tuple(part.detach() for part in final)

    @staticmethod
    @once_differentiable  # torchdiffeq's backward solve builds no graph either
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        dynamics = ctx.dynamics
        outputs = [(part, grad) for part, grad in zip(ctx.final, grads) if part.requires_grad]
        for _, grad in outputs:
            check_output_gradient(dynamics.settings.layer, grad)
        dynamics.begin_backward_solve()
        wanted = [tensor for tensor in ctx.inputs if tensor.requires_grad]
        # The inner graph is kept (it holds only the end states) for as long as the outer one: a backward()
        # with retain_graph=True may come back for it.
        with solver_failures_reported(functools.partial(dynamics.failure, dynamics.backward_direction)):
            found = iter(torch.autograd.grad(
                [part for part, _ in outputs], wanted, [grad for _, grad in outputs],
                retain_graph=True, allow_unused=True,
            ))
        return (None, None, None, *(next(found) if tensor.requires_grad else None for tensor in ctx.inputs))
