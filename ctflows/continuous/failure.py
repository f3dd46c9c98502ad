"""Turning an ODE solve that cannot proceed into a :class:`~ctflows.errors.SolverError` that says what to do.

torchdiffeq reports step-size underflow, too many steps and non-finite states with bare ``assert``s from
deep inside the solver; the user needs the layer, the tolerances, the work done so far and a remedy.
"""
from __future__ import annotations

import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor

from ctflows.errors import InputError, SolverError

GAVE_UP = "the solver gave up before the end time (scipy's solve_ivp stopped short)"
"""The reason given when a solve returned fewer time points than asked: torchdiffeq's scipy wrapper does so on failure."""


@dataclass
class SolveSettings:
    """What a failure message reports about the solve that failed."""

    layer: str
    method: str
    atol: float
    rtol: float
    max_num_steps: int
    step_size: float | None = None


def solver_failure_reason(error: BaseException) -> str | None:
    """Why the solve failed, if ``error``, raised inside ``odeint``, means the solve itself failed; else None.

    Only errors raised in torchdiffeq's own code count: its ``assert``s (step underflow, max_num_steps, a
    non-finite state), and its reshape of a solution with fewer time points than asked, which is how a scipy
    solve that gave up surfaces with a tuple state. An assert or RuntimeError from the user's field is theirs.
    """
    frames = traceback.extract_tb(error.__traceback__)
    if not frames or f"{os.sep}torchdiffeq{os.sep}" not in frames[-1].filename:
        return None
    if isinstance(error, AssertionError):
        return str(error)
    if isinstance(error, RuntimeError) and frames[-1].name == "_flat_to_shape":
        return GAVE_UP
    return None


@contextmanager
def solver_failures_reported(failure: Callable[[str], SolverError]) -> Iterator[None]:
    """Run the block, turning a failure of torchdiffeq's own solver into ``failure(reason)``, a SolverError.

    A SolverError already raised (by a step callback, naming its solve) passes through; an assert or
    RuntimeError that :func:`solver_failure_reason` does not put on the solver is the user's and passes too.
    """
    try:
        yield
    except SolverError:
        raise
    except (AssertionError, RuntimeError) as error:
        reason = solver_failure_reason(error)
        if reason is None:
            raise
        raise failure(reason) from error


def solver_error(settings: SolveSettings, direction: str, reason: str, nfe_forward: int, nfe_backward: int) -> SolverError:
    """A :class:`SolverError` naming the layer, the solve, its tolerances, the work so far and what to try."""
    reason = str(reason).strip().splitlines()[0][:200] if str(reason).strip() else "unknown failure"
    s = settings
    step = f", step_size={s.step_size:g}" if s.step_size is not None else ""
    return SolverError(
        f"{s.layer}: the {direction} ODE solve failed ({reason}). "
        f"Solver {s.method!r} with atol={s.atol:g}, rtol={s.rtol:g}{step}, max_num_steps={s.max_num_steps}; "
        f"function evaluations so far: {nfe_forward} forward, {nfe_backward} backward. "
        "The learned dynamics have probably become stiff. Try: RNODE regularization "
        "(regularization=('kinetic_energy', 'jacobian_frobenius') with a small weight in the loss), "
        "looser tolerances (e.g. atol=rtol=1e-4), a larger max_num_steps, a fixed-step solver "
        "(method='rk4', step_size=0.05), a lower learning rate, or a shorter end time T."
    )


def check_output_gradient(layer: str, grad: Tensor) -> None:
    """Raise an :class:`InputError` if the gradient arriving at a CNF's output is NaN or Inf.

    An adjoint solve started from such a gradient would fail or return NaN, and the failure would look like
    the solver's; the loss (or a layer after the CNF) is what produced it.
    """
    if not bool(torch.isfinite(grad).all()):
        raise InputError(
            f"{layer}: the gradient arriving at its output is NaN or Inf, before any solve; "
            "the loss (or a layer after this one) produced it, not the ODE solver"
        )
