"""The augmented right-hand side a CNF hands to the ODE solver, with its function-evaluation counters.

    d/dt (x, ℓ, r_1, …) = (v(t, x), tr ∂v/∂x, ρ_1, …)        x [B, D], ℓ and r_k [B]

ℓ is the log-det (Chen et al. 2018, instantaneous change of variables) and r_k the RNODE regularizers
(Finlay et al. 2020). One object is built per solve, so the probe noise and counters belong to that call.
"""
from __future__ import annotations

import weakref
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ctflows.continuous.divergence import (
    exact_divergence,
    exact_divergence_forward_mode,
    hutchinson_divergence,
    hutchinson_divergence_forward_mode,
)
from ctflows.continuous.failure import GAVE_UP, SolveSettings, solver_error
from ctflows.continuous.first_step import StepRecorder
from ctflows.continuous.regularization import regularization_rates
from ctflows.errors import ConfigurationError, SolverError


def forward_mode_outputs(
    products: Any, estimator: str, regularization: Sequence[str], t: Tensor, x: Tensor, context: Tensor | None,
    noise: Tensor | None, chunk_size: int | None,
) -> tuple[Tensor, ...]:
    """``(v [B, D], div [B], *rates [B])`` from ``products.forward_with_jvp`` (a field, or its compiled version)."""
    if estimator == "exact":
        v, div, jac = exact_divergence_forward_mode(products, t, x, context, chunk_size=chunk_size)
    else:
        v, div, jac = hutchinson_divergence_forward_mode(products, t, x, context, noise)
    return (v, div, *regularization_rates(regularization, v, jac))


class SolveStats(dict):
    """One CNF call's stats (``nfe_forward``, ``nfe_backward``, ..., ``regularization``): a dict that the call's
    dynamics refer to weakly.

    The regularizer terms in it hold the solve's autograd graph, and the graph holds the dynamics (a backward
    hook, or the adjoint's saved context). A strong reference from the dynamics back to the stats would close
    a cycle through the graph that Python's collector cannot see, and every training step's graph would stay
    in memory (direct backpropagation with RNODE lost 1-3 MB a step that way). A subclass, because a plain
    dict cannot be referred to weakly.
    """


class AugmentedDynamics:
    """Callable ``(t, (x, logdet, *regs)) -> (v, div, *rates)`` for ``torchdiffeq.odeint[_adjoint]``.

    Counts field calls into ``stats["nfe_forward"]`` during the solve and, after :meth:`end_forward`,
    into ``stats["nfe_backward"]`` (calls made by the adjoint solve during ``loss.backward()``). Under
    direct backpropagation no field call happens in the backward pass; there each evaluation whose
    output receives a gradient counts once, through a tensor hook, so the two modes report comparable work.

    Fields with ``forward_with_jvp`` give their Jacobian-vector products directly (forward mode, see
    :mod:`ctflows.continuous.divergence`). Otherwise the divergence needs autograd even when the caller runs
    under ``torch.no_grad()``: the field then runs under ``enable_grad`` and, when the caller did not want a
    graph, the outputs are detached and the graph freed.
    """

    def __init__(
        self,
        field: nn.Module,
        context: Tensor | None,
        *,
        estimator: str,
        noise: Tensor | None,
        regularization: Sequence[str],
        stats: SolveStats,
        settings: SolveSettings,
        direction: str,
        use_callbacks: bool,
        chunk_size: int | None = None,
        forward_mode: bool = True,
        jacobian_products: Any = None,
        first_step_recorders: tuple[StepRecorder | None, StepRecorder | None] = (None, None),
    ) -> None:
        self.field = field
        self.context = context
        self.estimator = estimator
        self.noise = noise
        self.regularization = tuple(regularization)
        self._stats = weakref.ref(stats)
        # The dynamics' own tally, copied into the stats while they live: a failure late in an adjoint
        # backward, after the CNF's next call has dropped this call's stats, still reports every evaluation.
        self.counts = {"nfe_forward": 0, "nfe_backward": 0}
        self.settings = settings
        self.direction = direction
        self.chunk_size = chunk_size
        self.forward_mode = forward_mode and callable(getattr(field, "forward_with_jvp", None))
        # Where forward_with_jvp is called: the field itself or a compiled wrapper of it (CNF(compile_field=True)).
        self.jacobian_products = jacobian_products if jacobian_products is not None else field
        self.backward_phase = False
        self.steps = 0
        # A solver without step callbacks (the scipy wrapper) has its field evaluations counted against
        # max_num_steps instead: else nothing would stop a solve that never gives up (LSODA on a blow-up).
        self.evaluations_are_steps = not use_callbacks
        if use_callbacks:
            # torchdiffeq looks these up by name; solvers without callback support would warn about them.
            self.callback_step = self._on_step
            self.callback_step_adjoint = self._on_adjoint_step
        # Each stores its solve's first accepted step (ctflows.continuous.first_step): this solve, its adjoint.
        for name, recorder in zip(("callback_accept_step", "callback_accept_step_adjoint"), first_step_recorders):
            if recorder is not None:
                setattr(self, name, recorder)

    def count(self, key: str) -> None:
        """One field evaluation more under ``key`` (``"nfe_forward"`` or ``"nfe_backward"``)."""
        self.counts[key] += 1
        stats = self._stats()
        if stats is not None:  # None once the CNF's next call has replaced (and so dropped) them
            stats[key] = self.counts[key]

    def evaluated(self, key: str) -> None:
        """Count one field evaluation of a solve (``key`` as in :meth:`count`), and, where the solver reports no
        steps, spend one of the solve's max_num_steps on it."""
        self.count(key)
        if self.evaluations_are_steps:
            self.steps += 1
            if self.steps > self.settings.max_num_steps:
                direction = self.backward_direction if key == "nfe_backward" else self.direction
                reason = (f"more than max_num_steps={self.settings.max_num_steps} field evaluations; this solver "
                          "reports no steps, so its evaluations are counted")
                raise self.failure(direction, reason)

    def end_state(self, solution: Tensor, direction: str) -> Tensor:
        """``odeint``'s solution at the end time, ``[2, ...] -> [...]``; a SolverError where the solver stopped short.

        torchdiffeq's scipy wrapper returns only the times solve_ivp reached, with no error, when it gives up;
        its last row would then be the start state.
        """
        if solution.shape[0] < 2:
            raise self.failure(direction, GAVE_UP)
        return solution[-1]

    def failure(self, direction: str, reason: str) -> SolverError:
        """The :class:`SolverError` for this solve, with the evaluations made so far."""
        return solver_error(self.settings, direction, reason, **self.counts)

    @property
    def backward_direction(self) -> str:
        """How failure messages name the adjoint solve that ``loss.backward()`` runs."""
        return f"adjoint (backward pass of the {self.direction})"

    def end_forward(self) -> None:
        """Mark the forward solve as done: later calls come from the adjoint backward solve."""
        self.backward_phase = True
        self.steps = 0

    def begin_backward_solve(self) -> None:
        """An adjoint solve starts: every ``backward()`` through the solve runs its own, with its own step budget."""
        self.steps = 0

    def __call__(self, t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        x = state[0]
        need_graph = torch.is_grad_enabled()
        self.evaluated("nfe_backward" if self.backward_phase else "nfe_forward")
        if self.forward_mode:
            out = forward_mode_outputs(
                self.jacobian_products, self.estimator, self.regularization, t, x, self.context, self.noise, self.chunk_size
            )
            self._check_velocity_shape(out[0], x)
        else:
            out = self._reverse_mode(t, x, need_graph)
        if not need_graph:
            return tuple(o.detach() for o in out)
        v = out[0]
        if not self.backward_phase and v.requires_grad:
            v.register_hook(self._count_backward)
        return out

    def vector_jacobian_product(
        self, t: Tensor, x: Tensor, grad_outputs: Sequence[Tensor], params: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """One evaluation of the adjoint solve: ``v`` and ``aᵀ ∂(v, div, *rates)/∂(x, params)`` for ``a = grad_outputs``.

        ``params`` are the field's trainable parameters, then the context if it requires grad (the CNF's
        order). Compiled fields (``CNF(compile_field=True)``) run it as one compiled graph; others by autograd.
        """
        compiled = getattr(self.jacobian_products, "vector_jacobian_product", None)
        if self.forward_mode and compiled is not None:
            self.evaluated("nfe_backward")
            v, grad_x, grad_params = compiled(
                t, x, self.context, self.noise, grad_outputs,
                estimator=self.estimator, regularization=self.regularization, chunk_size=self.chunk_size,
            )
            # It differentiates what requires grad now, not what did at the forward pass.
            if len(grad_params) != len(params) or any(g.shape != p.shape for g, p in zip(grad_params, params)):
                raise RuntimeError(
                    f"{self.settings.layer}: parameters were frozen or unfrozen between the forward pass and "
                    "backward(); change requires_grad before the forward pass"
                )
            return v, grad_x, list(grad_params)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            outputs = self(t, (x,))
            pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
            inputs = (x, *params)
            grads = torch.autograd.grad(
                [o for o, _ in pairs], inputs, [g for _, g in pairs], allow_unused=True
            ) if pairs else (None,) * len(inputs)
        grads = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]
        return outputs[0].detach(), grads[0], grads[1:]

    def _reverse_mode(self, t: Tensor, x: Tensor, need_graph: bool) -> tuple[Tensor, ...]:
        want_jacobian = "jacobian_frobenius" in self.regularization
        with torch.enable_grad():
            if not (need_graph and x.requires_grad):
                # Also when x "requires grad" as a view made under no_grad: such a view is not in any graph.
                x = x.detach().requires_grad_(True)
            v = self.field(t, x, self.context)
            self._check_velocity_shape(v, x)
            if self.estimator == "exact":
                div, jac = exact_divergence(
                    v, x, create_graph=need_graph, chunk_size=self.chunk_size, return_jacobian=want_jacobian
                )
            else:
                div, jac = hutchinson_divergence(v, x, self.noise, create_graph=need_graph)
            rates = regularization_rates(self.regularization, v, jac)
        return (v, div, *rates)

    def _check_velocity_shape(self, v: Tensor, x: Tensor) -> None:
        """dx/dt must have x's shape: else autograd's message about batched gradients (reverse mode), or
        torchdiffeq's about mismatched sizes (forward mode), is the first word."""
        if v.shape != x.shape:
            raise ConfigurationError(
                f"{self.settings.layer}: the field returned shape {list(v.shape)} for x of shape {list(x.shape)}; "
                "it must return dx/dt, of x's shape"
            )

    def _count_backward(self, grad: Tensor) -> None:
        self.count("nfe_backward")

    def _check_step(self, t0: Tensor, y0: Any, dt: Tensor, direction: str, check_finite: bool) -> None:
        self.steps += 1
        reason = None
        # torchdiffeq hands callbacks the user's time (negated when integrating backwards) and the tupled state.
        if self.steps > self.settings.max_num_steps:
            reason = f"more than max_num_steps={self.settings.max_num_steps} steps"
        # Only adaptive solves (no step_size) can shrink their step to nothing; a fixed grid skips this
        # comparison and so the host-device synchronisation it costs on a GPU.
        elif self.settings.step_size is None and not bool(t0.abs() + dt.abs() > t0.abs()):
            reason = f"step size underflow at t={float(t0):.6g}, dt={float(dt):.3g}: stiff dynamics, or a field returning NaN/Inf"
        elif check_finite and not all(bool(torch.isfinite(y).all()) for y in (y0 if isinstance(y0, tuple) else (y0,))):
            reason = f"non-finite values in the state at t={float(t0):.6g}"
        if reason is not None:
            raise self.failure(direction, reason)

    def _on_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        # The solver itself asserts finiteness right after this callback; its message is caught upstream.
        self._check_step(t0, y0, dt, self.direction, check_finite=False)

    def _on_adjoint_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        # Failures in loss.backward() cannot be caught by the CNF, so every check happens here.
        self._check_step(t0, y0, dt, self.backward_direction, check_finite=True)
