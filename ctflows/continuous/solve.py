"""One ODE solve over the augmented CNF state (``odeint``, ctflows' adjoint or ``odeint_adjoint``), error control on ``x`` only.

The log-det and regularizer states are integrals of the trajectory (their rates never feed back into the
dynamics), so letting their error estimates shrink the step buys nothing for ``x`` and costs steps. The
forward solve therefore measures error with an RMS norm over ``x`` alone; the adjoint solve measures it on
``x`` and ``a_x`` (:mod:`ctflows.continuous.adjoint`; with ``adjoint="torchdiffeq"``, torchdiffeq's
``"seminorm"``), leaving out the parameter-adjoint integrals, which feed nothing back (Kidger, Chen & Lyons,
"Hey, that's not an ODE", 2021). The adjoint of ℓ is constant, so leaving it out is exact too.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchdiffeq import odeint

# torchdiffeq keeps its solver table private; the pinned version (see constraints.txt) is the one tested.
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver
from torchdiffeq._impl.scipy_wrapper import ScipyWrapperODESolver
from torchdiffeq._impl.solvers import FixedGridODESolver

from ctflows.continuous.adjoint import AdjointProblem, integrate_with_adjoint, rms
from ctflows.continuous.torchdiffeq_adjoint import integrate_with_torchdiffeq_adjoint
from ctflows.errors import ConfigurationError


def is_fixed_step(method: str) -> bool:
    """Whether ``method`` is one of torchdiffeq's fixed-grid solvers (euler, midpoint, rk4, adams, ...)."""
    check_method(method)
    return issubclass(SOLVERS[method], FixedGridODESolver)


def supports_step_callbacks(method: str) -> bool:
    """Whether the solver calls ``callback_step`` on each step (all but the scipy wrapper)."""
    return "callback_step" in SOLVERS[method].valid_callbacks()


def differentiable_steps(method: str) -> bool:
    """Whether autograd can backpropagate through the solver's steps (all but the scipy wrapper, which steps in NumPy)."""
    return not issubclass(SOLVERS[method], ScipyWrapperODESolver)


def accepts_first_step(method: str) -> bool:
    """Whether the solver is an adaptive Runge-Kutta one, which takes a ``first_step`` option (dopri5, bosh3, ...)."""
    return issubclass(SOLVERS[method], RKAdaptiveStepsizeODESolver)


def check_method(method: str) -> None:
    if method not in SOLVERS:
        raise ConfigurationError(f"unknown ODE solver {method!r}; torchdiffeq offers {sorted(SOLVERS)}")


def _x_only_rms(state: tuple[Tensor, ...]) -> Tensor:
    return rms(state[0])


def check_adjoint(adjoint: bool | str) -> None:
    """``True``: :mod:`ctflows.continuous.adjoint`; ``"torchdiffeq"``: ``torchdiffeq.odeint_adjoint``; ``False``: direct."""
    if not (adjoint is True or adjoint is False or adjoint == "torchdiffeq"):
        raise ConfigurationError(
            f"adjoint must be True (ctflows' adjoint), 'torchdiffeq' (torchdiffeq.odeint_adjoint) or False (direct "
            f"backpropagation), got {adjoint!r}"
        )


def integrate(
    dynamics: Any,
    state0: tuple[Tensor, ...],
    start: Tensor,
    end: Tensor,
    *,
    method: str,
    atol: float,
    rtol: float,
    step_size: float | None,
    adjoint: bool | str,
    seminorm: bool,
    params: tuple[Tensor, ...],
    first_steps: tuple[float | None, float | None] = (None, None),
) -> tuple[Tensor, ...]:
    """Integrate ``state0`` from ``start`` to ``end`` and return the final state (a tuple like ``state0``).

    ``params`` are the tensors the adjoint differentiates besides the state (field parameters, context).
    ``first_steps``: the first step to try in this solve and in its adjoint backward solve (None: torchdiffeq's
    heuristic; see :mod:`ctflows.continuous.first_step`). Without grad mode the plain solver runs: there is
    no backward pass to make cheaper.
    """
    options: dict[str, Any] = {}
    if step_size is not None:
        options["step_size"] = step_size
    adjoint_options = dict(options)
    for solve_options, first_step in zip((options, adjoint_options), first_steps):
        if first_step is not None:
            solve_options["first_step"] = first_step
    if adjoint is True and torch.is_grad_enabled():
        problem = AdjointProblem(dynamics, method, atol, rtol, options, adjoint_options, seminorm)
        return integrate_with_adjoint(problem, state0, start, end, params)
    times = torch.stack([start, end])
    if seminorm:
        options["norm"] = _x_only_rms
    if adjoint == "torchdiffeq" and torch.is_grad_enabled():
        if seminorm:
            adjoint_options["norm"] = "seminorm"
        # A tuple state never comes back short: torchdiffeq's reshape of a scipy solve that gave up raises
        # first, and failure.solver_failure_reason reads that (the flat adjoint checks with end_state).
        return integrate_with_torchdiffeq_adjoint(
            dynamics, state0, times, params, rtol=rtol, atol=atol, method=method, options=options,
            adjoint_options=adjoint_options,
        )
    solution = odeint(dynamics, state0, times, rtol=rtol, atol=atol, method=method, options=options)
    return tuple(s[-1] for s in solution)
