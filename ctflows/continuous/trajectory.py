"""A CNF between its end points: where points go along t, and the density at every intermediate time.

    path:     x(t) solves dx/dt = v(t, x) from x(t_0) given                       (Chen et al. 2018)
    density:  log p_s(y) = log p_T(x(T)) + ∫_s^T tr(∂v/∂x)(t, x(t)) dt,   x(s) = y   (FFJORD, Grathwohl et al. 2019)

so ``p_0`` is the model's density of the data and ``p_T`` the base. These are for plots and animations
(no gradients); they solve with the layer's evaluation tolerances and the exact divergence.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor
from torchdiffeq import odeint

from ctflows.continuous.cnf import CNF
from ctflows.continuous.divergence import exact_divergence


def _times(values: Sequence[float] | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device)


def _solver_options(cnf: CNF, like: Tensor) -> dict:
    floor = 8 * torch.finfo(like.dtype).eps  # the same floor the layer itself applies
    return {"method": cnf.method, "atol": max(cnf.eval_atol, floor), "rtol": max(cnf.eval_rtol, floor),
            **({"options": {"step_size": cnf.step_size}} if cnf.step_size is not None else {})}


@torch.no_grad()
def cnf_path(cnf: CNF, x: Tensor, times: Sequence[float] | Tensor, context: Tensor | None = None) -> Tensor:
    """Positions of ``x [N, D]`` (given at ``times[0]``) at each of ``times [K]`` under ``cnf``'s field: ``[K, N, D]``.

    Times may run either way, e.g. ``[0, …, T]`` (data -> base) or ``[T, …, 0]`` (base -> data).
    """
    field = cnf.field

    def velocity(t: Tensor, state: Tensor) -> Tensor:
        return field(t, state, context)

    return odeint(velocity, x, _times(times, x), **_solver_options(cnf, x))


def _log_density_at(cnf: CNF, base_log_prob: Callable[[Tensor], Tensor], y: Tensor, s: float) -> Tensor:
    times = _times([s, float(cnf.end_time)], y)
    if not bool(times[0] < times[1]):  # compared in y's dtype: a learned float32 T need not equal float(T)
        return base_log_prob(y)
    field = cnf.field

    def augmented(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            x = state[0].detach().requires_grad_(True)
            v = field(t, x)
            div, _ = exact_divergence(v, x)
        return v.detach(), div.detach()

    x_end, integral = odeint(augmented, (y, y.new_zeros(y.shape[0])), times, **_solver_options(cnf, y))
    return base_log_prob(x_end[-1]) + integral[-1]


@torch.no_grad()
def density_along_t(
    cnf: CNF,
    base_log_prob: Callable[[Tensor], Tensor],
    points: Tensor,
    times: Sequence[float],
    batch_size: int = 8192,
) -> Tensor:
    """``log p_s`` on ``points [N, D]`` for each ``s`` in ``times [K]`` (each in [0, T]): ``[K, N]``.

    ``base_log_prob`` is the density at ``T`` (the flow's base). One ODE solve from ``s`` to ``T`` per time
    and batch, with the exact divergence (D backward passes per step: meant for small D, e.g. plots in 2-D).
    Unconditional fields only.
    """
    frames = []
    for s in times:
        chunks = [_log_density_at(cnf, base_log_prob, chunk, float(s)) for chunk in points.split(batch_size)]
        frames.append(torch.cat(chunks).detach())
    return torch.stack(frames)
