"""Warm-started first steps for the adaptive solves of a training loop.

    first step of solve n+1 = min(GROWTH · h_n, span_{n+1}),   h_n = the first step solve n accepted

torchdiffeq starts an adaptive solve with the step of Hairer's heuristic (Hairer, Nørsett & Wanner, "Solving
ordinary differential equations I", 1993, II.4): one extra evaluation of the right-hand side, and a guess that
is often too long, so the first step is rejected and its evaluations (six for dopri5) are lost. A training
loop solves nearly the same ODE at every iteration, so the step the last solve of the same kind accepted
first is the better guess. It is tried GROWTH times longer so that it can grow back when the dynamics ease
(a rejected start shrinks it again). Every step still passes the same atol/rtol test; the results differ
from a cold start's only at that tolerance, but they do depend on the solves before.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Iterator

from torch import Tensor, nn

GROWTH = 1.2

StepRecorder = Callable[[Tensor, Any, Tensor], None]
"""A torchdiffeq ``callback_accept_step(t0, y0, dt)``."""


class FirstStepMemory:
    """For each kind of solve, the first step its last run accepted (in the field's time units).

    ``hint(kind, span)`` is the first step to try (or None before any run: torchdiffeq's heuristic decides);
    ``recorder(kind)`` is the ``callback_accept_step`` that stores one run's first accepted step.
    """

    def __init__(self, growth: float = GROWTH) -> None:
        self.growth = growth
        self.steps: dict[Hashable, float] = {}

    def hint(self, kind: Hashable, span: float) -> float | None:
        step = self.steps.get(kind)
        return None if step is None else min(self.growth * step, span)

    def recorder(self, kind: Hashable) -> StepRecorder:
        recorded = False

        def record(t0: Tensor, y0: Any, dt: Tensor) -> None:
            nonlocal recorded
            if not recorded:  # only the first accepted step of this run
                self.steps[kind] = float(dt.detach())
                recorded = True

        return record

    def state_dict(self) -> list[tuple[Hashable, float]]:
        """The recorded steps as ``[(kind, step), ...]``: plain tuples, readable by ``torch.load(weights_only=True)``."""
        return list(self.steps.items())

    def load_state_dict(self, state: list[tuple[Hashable, float]]) -> None:
        self.steps = {tuple(kind) if isinstance(kind, list) else kind: float(step) for kind, step in state}


def _memories(model: nn.Module) -> Iterator[tuple[str, FirstStepMemory]]:
    for name, module in model.named_modules():
        memory = getattr(module, "first_steps", None)
        if isinstance(memory, FirstStepMemory):
            yield name, memory


def first_step_states(model: nn.Module) -> dict[str, list]:
    """Every submodule's first-step memory by module name, for a training checkpoint (resumes stay bit-exact)."""
    return {name: memory.state_dict() for name, memory in _memories(model)}


def load_first_step_states(model: nn.Module, states: dict[str, list]) -> None:
    """Restore what :func:`first_step_states` saved; submodules it does not name start with an empty memory."""
    for name, memory in _memories(model):
        memory.load_state_dict(states.get(name, []))
