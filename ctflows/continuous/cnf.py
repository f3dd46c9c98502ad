"""The continuous normalizing flow layer: a neural ODE from data (t = 0) to base (t = T).

    dx/dt = v(t, x),   z = x(T),   log|det ∂z/∂x| = ∫_0^T tr(∂v/∂x)(t, x(t)) dt

(Chen et al. 2018; Grathwohl et al., FFJORD, 2019). The state, log-det and RNODE regularizers (Finlay et
al. 2020) are integrated together in one ``odeint`` call; the inverse runs the same ODE from T back to 0.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
from torch import Tensor, nn

from ctflows.continuous.compiled import CompiledField
from ctflows.continuous.divergence import NOISE_KINDS, resolve_divergence, sample_noise
from ctflows.continuous.dynamics import AugmentedDynamics, SolveStats
from ctflows.continuous.failure import SolveSettings, solver_failures_reported
from ctflows.continuous.first_step import FirstStepMemory, StepRecorder
from ctflows.continuous.regularization import check_regularization
from ctflows.continuous.solve import (
    accepts_first_step,
    check_adjoint,
    check_method,
    differentiable_steps,
    integrate,
    is_fixed_step,
    supports_step_callbacks,
)
from ctflows.core.counts import optional_count, positive_count, real_setting
from ctflows.core.transform import Transform
from ctflows.core.validation import check_call_signature
from ctflows.errors import ConfigurationError, InputError

TOLERANCE_FLOOR_EPS = 8
"""Tolerances are raised to at least this many machine epsilons of the input dtype (about 1e-6 in float32)."""



def check_field_signature(field: nn.Module) -> None:
    """A velocity field is called as ``field(t, x, context)``: one that cannot be is refused when the CNF is built."""
    if not isinstance(field, nn.Module):  # its parameters are what the solve differentiates
        raise ConfigurationError(
            f"CNF: the field must be an nn.Module (e.g. ctflows.continuous.TimeMLP), got {type(field).__name__}"
        )
    # An nn.Module's __call__ takes anything; its forward says what it takes.
    check_call_signature(
        field.forward, 3, f"CNF: the field {type(field).__name__} must accept field(t, x, context=None) -> dx/dt of x's shape"
    )


def _features_of(field: nn.Module, features: int | None) -> int:
    """The state size D: ``features`` where given, else the field's own ``features``; the two must agree."""
    said = getattr(field, "features", None)
    name = type(field).__name__
    if features is None and said is None:
        raise ConfigurationError(
            f"CNF: the field {name} does not say how many features its state has (it has no .features); pass features=D"
        )
    if features is not None:
        features = positive_count("CNF", "features", features)
        if said is not None and said != features:
            raise ConfigurationError(f"CNF: features={features}, but the field {name} is built for {said}")
        return features
    return positive_count(f"CNF: the field {name}", "features", said)


def _positive_number(value: object) -> bool:
    """A finite real number > 0 (a Python, NumPy or 0-d torch number; not a string, a bool or NaN)."""
    if isinstance(value, (bool, str, bytes)):
        return False
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return 0 < number < math.inf

class CNF(Transform):
    """Continuous normalizing flow ``x [B, D] -> (z [B, D], log|det ∂z/∂x| [B])`` by an ODE solve.

    The log-det is exact up to solver tolerance with ``"exact"`` divergence; with ``"hutchinson"`` it is an
    unbiased estimate (one probe per sample, fixed along the trajectory) and ``stats["logdet_exact"]`` is
    False. Training uses ``divergence``/``atol``/``rtol``; ``eval()`` uses ``eval_divergence`` and the
    tighter ``eval_atol``/``eval_rtol``. Regularizers are integrated only in training mode.

    Args:
        field: velocity field ``field(t, x, context=None) -> [B, D]`` (see :mod:`ctflows.continuous.fields`).
        features: D; read from ``field.features`` when omitted.
        end_time: T > 0. ``learn_end_time=True`` makes it a parameter, T = softplus(θ) (FFJORD learns T too).
        method: any torchdiffeq solver (``"dopri5"``, ``"bosh3"``, ``"rk4"``, ...); fixed-step ones need ``step_size``.
        atol, rtol: training tolerances. eval_atol, eval_rtol: evaluation tolerances (default a tenth of the
            training ones). Any tolerance below 8 machine epsilons of the input's dtype is raised to that.
        adjoint: how gradients get through the solve. ``True``: a second, adjoint ODE solve backwards in time
            (memory independent of the number of steps; :mod:`ctflows.continuous.adjoint`, which integrates
            only what a CNF needs); ``"torchdiffeq"``: the general ``torchdiffeq.odeint_adjoint``, same
            gradients, slower; ``False``: direct backpropagation through the solver's steps (memory grows
            with them, no second solve).
        divergence, eval_divergence: ``"exact"``, ``"hutchinson"`` or ``"auto"`` (exact for D <= 8).
        noise: Hutchinson probes, ``"rademacher"`` (lower variance) or ``"gaussian"``.
        regularization: names from ``("kinetic_energy", "jacobian_frobenius")``; their batch means land in
            ``stats["regularization"]`` for the training loop to weight into the loss.
        seminorm: step-size control on ``x`` only (forward) and on ``x`` and its adjoint (backward); False
            controls every state, as FFJORD does.
        max_num_steps: solver steps allowed per solve (each direction) before a :class:`SolverError`; with
            ``method="scipy_solver"``, which reports no steps, field evaluations.
        exact_chunk_size: basis vectors per batched pass in the exact divergence (bounds memory for large D).
        field_jvp: use the field's own forward-mode Jacobian products (``forward_with_jvp``, which the MLP
            fields have) instead of autograd vector-Jacobian products: same values, no double backward.
        compile_field: run ``forward_with_jvp``, and each evaluation of the adjoint solve (with its
            vector-Jacobian product), under ``torch.compile`` (compiled on first use, once per grad mode and
            input shape; on CPU this needs a C++ compiler). About 1.5x faster training on CPU in FFJORD's
            toy configuration (docs/benchmarks.md); off by default for the compile time. torch.compile keeps
            at most ``torch._dynamo.config.recompile_limit`` (8) variants per compiled function in a process,
            shared by all CNFs: past that (many field shapes, batch sizes, settings) the rest run eagerly.
        end_time_jitter: b in [0, 1). In training mode each call integrates to T·(1 + u), u ~ U(-b, b), drawn
            anew per call (STEER: Ghosh et al., "STEER: simple temporal regularization for neural ODEs", 2020,
            who jitter T additively; relative jitter keeps T·(1 + u) > 0 when T is learned). Evaluation uses T,
            so call ``eval()`` before sampling. Flow matching (which never solves the ODE in training) ignores it.
        warm_start_step: in training mode, start each adaptive solve (and the adjoint's backward solve) at
            1.2x the first step the previous solve of its kind accepted, instead of torchdiffeq's initial-step
            heuristic, which costs an evaluation and is often rejected (:mod:`ctflows.continuous.first_step`).
            About 20% fewer evaluations per iteration in FFJORD's toy configuration (docs/benchmarks.md). The
            tolerances still hold every step; evaluation mode never uses it, so eval results do not depend on
            the calls before. Training-mode outputs do: a finite-difference or gradcheck over training-mode
            calls needs ``warm_start_step=False``. ``fit`` checkpoints the memory, so resumed runs stay exact.
        name: label used in error messages.

    ``stats`` after a call: ``nfe_forward`` (field calls in this call's solve), ``nfe_backward`` (filled in
    by ``loss.backward()``), ``logdet_exact``, ``divergence`` and, when enabled, ``regularization``.
    """

    def __init__(
        self,
        field: nn.Module,
        features: int | None = None,
        *,
        end_time: float = 1.0,
        learn_end_time: bool = False,
        method: str = "dopri5",
        step_size: float | None = None,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        eval_atol: float | None = None,
        eval_rtol: float | None = None,
        adjoint: bool | str = True,
        divergence: str = "auto",
        eval_divergence: str = "exact",
        noise: str = "rademacher",
        regularization: Sequence[str] | str | None = None,
        seminorm: bool = True,
        max_num_steps: int = 10_000,
        exact_chunk_size: int | None = None,
        field_jvp: bool = True,
        compile_field: bool = False,
        end_time_jitter: float = 0.0,
        warm_start_step: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__()
        check_field_signature(field)
        features = _features_of(field, features)
        check_method(method)
        check_adjoint(adjoint)
        if is_fixed_step(method) and step_size is None:
            raise ConfigurationError(f"CNF: the fixed-step solver {method!r} needs a step_size (e.g. step_size=0.05)")
        if not is_fixed_step(method) and step_size is not None:
            raise ConfigurationError(f"CNF: step_size is for fixed-step solvers; {method!r} chooses its own steps from atol/rtol")
        # NaN or infinite settings would otherwise surface as a solver failure blamed on stiff dynamics.
        max_num_steps = positive_count("CNF", "max_num_steps", max_num_steps)
        for setting, value in (("atol", atol), ("rtol", rtol), ("end_time", end_time)):
            if not _positive_number(value):
                raise ConfigurationError(f"CNF: {setting} must be finite and positive, got {value!r}")
        for setting, value in (("step_size", step_size), ("eval_atol", eval_atol), ("eval_rtol", eval_rtol), ("exact_chunk_size", exact_chunk_size)):
            if value is not None and not _positive_number(value):
                raise ConfigurationError(f"CNF: {setting} must be finite and positive (or None for the default), got {value!r}")
        real_setting("CNF", "end_time_jitter", end_time_jitter, "in [0, 1) (a fraction of T)", lambda b: 0.0 <= b < 1.0)
        if noise not in NOISE_KINDS:
            raise ConfigurationError(f"CNF: noise {noise!r} is not one of {NOISE_KINDS}")
        resolve_divergence(divergence, features)
        resolve_divergence(eval_divergence, features)
        self.field = field
        self.features = int(features)
        self.event_shape = (self.features,)
        self.context_features = getattr(field, "context_features", None)
        self.method, self.step_size, self.adjoint, self.seminorm = method, step_size, adjoint, seminorm
        self.atol, self.rtol = float(atol), float(rtol)
        self.eval_atol = float(eval_atol) if eval_atol is not None else self.atol / 10
        self.eval_rtol = float(eval_rtol) if eval_rtol is not None else self.rtol / 10
        self.divergence, self.eval_divergence, self.noise = divergence, eval_divergence, noise
        self.regularization = check_regularization(regularization)
        # A whole number: the forward-mode divergence steps through the basis vectors by it.
        self.exact_chunk_size = optional_count("CNF", "exact_chunk_size", exact_chunk_size)
        self.max_num_steps, self.name = max_num_steps, name
        self.field_jvp = field_jvp
        if compile_field and not (field_jvp and callable(getattr(field, "forward_with_jvp", None))):
            raise ConfigurationError(
                f"CNF: compile_field compiles the field's forward_with_jvp, which {type(field).__name__} "
                f"{'has, but field_jvp=False turns it off' if hasattr(field, 'forward_with_jvp') else 'does not have'}; "
                "use a ctflows.continuous field (TimeMLP, ...) with field_jvp=True, or compile_field=False"
            )
        self.compile_field = compile_field
        self.end_time_jitter = float(end_time_jitter)
        self.warm_start_step = warm_start_step
        self.first_steps = FirstStepMemory()
        if learn_end_time:
            # softplus⁻¹(T) = log(expm1(T)) so the layer starts at the requested T.
            # Above ~700 expm1 overflows; there softplus⁻¹(T) = T + log(1 - e^-T) is T to double precision.
            inverse = math.log(math.expm1(end_time)) if end_time < 30 else end_time + math.log1p(-math.exp(-end_time))
            self.raw_end_time = nn.Parameter(torch.tensor(inverse))
        else:
            # A Python float, not a buffer: a float32 buffer would round T before .double() could help.
            self.fixed_end_time = float(end_time)

    @property
    def end_time(self) -> Tensor | float:
        """T: a 0-d tensor when learned (differentiable), else a float."""
        if hasattr(self, "raw_end_time"):
            return nn.functional.softplus(self.raw_end_time)
        return self.fixed_end_time

    def _jacobian_products(self) -> nn.Module | CompiledField:
        """What the solve calls ``forward_with_jvp`` on: the field, or its compiled version (made once)."""
        if not self.compile_field:
            return self.field
        compiled = self.__dict__.get("_compiled_jvp")
        if compiled is None or compiled.field is not self.field:  # made anew if the field was replaced
            compiled = self.__dict__["_compiled_jvp"] = CompiledField(self.field)
        return compiled

    def __getstate__(self) -> dict:
        # Compiled code does not pickle or deep-copy; a copy compiles its own on first use.
        state = super().__getstate__()
        state.pop("_compiled_jvp", None)
        return state

    def __setstate__(self, state: dict) -> None:
        # CNFs pickled before these settings existed get their defaults.
        state.setdefault("end_time_jitter", 0.0)
        state.setdefault("warm_start_step", True)
        state.setdefault("first_steps", FirstStepMemory())
        super().__setstate__(state)

    def label(self) -> str:
        return self.name or f"CNF(features={self.features}, field={type(self.field).__name__})"

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self._solve(x, context, inverse=False)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self._solve(z, context, inverse=True)

    def _solve(self, x: Tensor, context: Tensor | None, *, inverse: bool) -> tuple[Tensor, Tensor]:
        context = context if self.context_features is not None else None
        end = self.end_time
        T = end.to(x) if isinstance(end, Tensor) else x.new_tensor(end)
        if self.training and self.end_time_jitter > 0:
            T = T * (1.0 + self.end_time_jitter * (2.0 * torch.rand((), dtype=x.dtype, device=x.device) - 1.0))
        first_steps, recorders = self._first_step_hints(x, T, inverse)
        dynamics, stats = self._dynamics(x, context, inverse, recorders)
        if not dynamics.forward_mode and torch.is_inference_mode_enabled():
            raise InputError(
                f"{dynamics.settings.layer}: its divergence needs autograd (the field has no forward-mode Jacobian "
                "products, or field_jvp=False), which torch.inference_mode() switches off; use torch.no_grad() instead"
            )
        settings, regs = dynamics.settings, dynamics.regularization
        start, end = (T, torch.zeros_like(T)) if inverse else (torch.zeros_like(T), T)
        zeros = x.new_zeros(x.shape[0])
        params = tuple(p for p in self.field.parameters() if p.requires_grad)
        if context is not None and context.requires_grad:
            params += (context,)  # the adjoint only differentiates what it is told about
        if self.adjoint is False and torch.is_grad_enabled() and (params or x.requires_grad) and not differentiable_steps(self.method):
            # else the output comes back detached, and backward() fails far from here or gradients are silently missing
            raise ConfigurationError(
                f"{settings.layer}: method={self.method!r} steps in NumPy, so adjoint=False (backpropagation through "
                "its steps) would give no gradient; use adjoint=True or 'torchdiffeq', or call it under torch.no_grad()"
            )
        with solver_failures_reported(functools.partial(dynamics.failure, dynamics.direction)):
            final = integrate(
                dynamics, (x, zeros, *(zeros for _ in regs)), start, end, method=self.method, atol=settings.atol,
                rtol=settings.rtol, step_size=self.step_size, adjoint=self.adjoint, seminorm=self.seminorm, params=params,
                first_steps=first_steps,
            )
        # Fixed-grid solvers do not check the state, and an adaptive one's error norm (x only, with the
        # seminorm) never sees the log-det: one check of the final state, one host sync however many parts.
        if not bool(torch.stack([torch.isfinite(s).all() for s in final]).all()):
            reason = "the state became NaN or Inf: the field returned non-finite values"
            raise dynamics.failure(dynamics.direction, reason)
        dynamics.end_forward()
        out, logdet, *values = final
        if regs:
            sign = -1.0 if inverse else 1.0  # integrated from T down to 0
            stats["regularization"] = {n: sign * v.mean() for n, v in zip(regs, values)}
        return out, logdet

    def _first_step_hints(
        self, x: Tensor, T: Tensor, inverse: bool
    ) -> tuple[tuple[float | None, float | None], tuple[StepRecorder | None, StepRecorder | None]]:
        """The first steps to try in this solve and in its adjoint solve, and the callbacks recording what they accept."""
        if not (self.warm_start_step and self.training and accepts_first_step(self.method)):
            return (None, None), (None, None)
        span = float(T.detach())
        # Tolerances and dtype change the step a solve can take; the direction changes which end it starts at.
        setting = (inverse, self.method, self.atol, self.rtol, str(x.dtype))
        kinds = (("solve", *setting), ("adjoint", *setting))
        return tuple(self.first_steps.hint(k, span) for k in kinds), tuple(self.first_steps.recorder(k) for k in kinds)

    def _dynamics(
        self, x: Tensor, context: Tensor | None, inverse: bool,
        first_step_recorders: tuple[StepRecorder | None, StepRecorder | None] = (None, None),
    ) -> tuple[AugmentedDynamics, SolveStats]:
        """The right-hand side for one call, with this mode's settings, and its fresh stats (also set on ``self``)."""
        train = self.training
        estimator = resolve_divergence(self.divergence if train else self.eval_divergence, self.features)
        # A tolerance the state's dtype cannot resolve would only end in step-size underflow.
        floor = TOLERANCE_FLOOR_EPS * torch.finfo(x.dtype).eps
        atol, rtol = (max(tol, floor) for tol in ((self.atol, self.rtol) if train else (self.eval_atol, self.eval_rtol)))
        stats = SolveStats(nfe_forward=0, nfe_backward=0, logdet_exact=estimator == "exact", divergence=estimator)
        self.stats = stats  # the CNF's strong reference; the dynamics' is weak
        dynamics = AugmentedDynamics(
            self.field, context, estimator=estimator,
            noise=sample_noise(x, self.noise) if estimator == "hutchinson" else None,
            regularization=self.regularization if train else (), stats=stats,
            settings=SolveSettings(self.label(), self.method, atol, rtol, self.max_num_steps, self.step_size),
            direction="inverse (base -> data)" if inverse else "forward (data -> base)",
            use_callbacks=supports_step_callbacks(self.method), chunk_size=self.exact_chunk_size,
            forward_mode=self.field_jvp, jacobian_products=self._jacobian_products(),
            first_step_recorders=first_step_recorders,
        )
        return dynamics, stats

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, method={self.method!r}, atol={self.atol:g}, rtol={self.rtol:g}, "
            f"{'compile_field=True, ' if self.compile_field else ''}"
            f"{f'end_time_jitter={self.end_time_jitter:g}, ' if self.end_time_jitter else ''}"
            f"{'' if self.warm_start_step else 'warm_start_step=False, '}"
            f"adjoint={self.adjoint!r}, divergence={self.divergence!r}, eval_divergence={self.eval_divergence!r}, "
            f"regularization={self.regularization}"
        )
