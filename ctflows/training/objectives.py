"""Training objectives for ``fit``: each maps a batch to ``(loss, nll or None)``.

    maximum likelihood:  loss = −(1/B) Σ_b log q(x_b | c_b)
    flow matching:       loss = E‖v(t, x_t) − u_t‖²   (see :mod:`ctflows.continuous.matching`)
"""
from __future__ import annotations

from typing import Callable, Union

from torch import Tensor, nn

from ctflows.continuous.matching import FlowMatching
from ctflows.errors import ConfigurationError

Objective = Callable[[nn.Module, Tensor, "Tensor | None"], "tuple[Tensor, Tensor | None]"]


class MaximumLikelihood:
    """Mean negative log-likelihood of the batch (the default objective)."""

    name = "likelihood"

    def __call__(self, flow: nn.Module, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        nll = -flow.log_prob(x, context).mean()
        return nll, nll


NAMED: dict[str, Callable[[], Objective]] = {"likelihood": MaximumLikelihood, "flow_matching": FlowMatching}


def resolve_objective(objective: Union[str, Objective]) -> Objective:
    """An objective from its name (``"likelihood"``, ``"flow_matching"``) or a callable passed through."""
    if isinstance(objective, str):
        if objective not in NAMED:
            raise ConfigurationError(f"fit: objective must be one of {sorted(NAMED)} or a callable, got {objective!r}")
        return NAMED[objective]()
    if not callable(objective):
        raise ConfigurationError(f"fit: objective must be a name or a callable, got {type(objective).__name__}")
    return objective
