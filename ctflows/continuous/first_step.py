"""Warm-started first steps for the adaptive solves of a training loop.

    first step of solve n+1 = min(GROWTH · h_n / span_n, 1) · span_{n+1},   h_n = the first step solve n accepted

torchdiffeq starts an adaptive solve with the step of Hairer's heuristic (Hairer, Nørsett & Wanner, "Solving
ordinary differential equations I", 1993, II.4): one extra evaluation of the right-hand side, and a guess that
is often too long, so the first step is rejected and its evaluations (six for dopri5) are lost. A training
loop solves nearly the same ODE at every iteration, so the step the last solve of the same kind accepted
first is the better guess. It is tried GROWTH times longer so that it can grow back when the dynamics ease
(a rejected start shrinks it again). Accuracy is unchanged: every step still passes the atol/rtol test.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable

from torch import Tensor

GROWTH = 1.2


class FirstStepMemory:
    """For each kind of solve, the first step its last run accepted, as a fraction of that run's time span.

    ``hint(kind, span)`` is the first step to try (or None before any run: torchdiffeq's heuristic decides);
    ``recorder(kind, span)`` is the ``callback_accept_step`` that stores one run's first accepted step.
    """

    def __init__(self, growth: float = GROWTH) -> None:
        self.growth = growth
        self.fractions: dict[Hashable, float] = {}

    def hint(self, kind: Hashable, span: float) -> float | None:
        fraction = self.fractions.get(kind)
        return None if fraction is None else min(self.growth * fraction, 1.0) * span

    def recorder(self, kind: Hashable, span: float) -> Callable[[Tensor, Any, Tensor], None]:
        recorded = False

        def record(t0: Tensor, y0: Any, dt: Tensor) -> None:
            nonlocal recorded
            if not recorded:  # only the first accepted step of this run
                self.fractions[kind] = float(dt) / span
                recorded = True

        return record
