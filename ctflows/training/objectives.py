"""Training objectives for ``fit``: each maps a batch to ``(loss, nll or None)``.

    maximum likelihood:  loss = −(1/B) Σ_b log q(x_b | c_b)
    flow matching:       loss = E‖v(t, x_t) − u_t‖²   (see :mod:`ctflows.continuous.matching`)
"""
from __future__ import annotations

from typing import Callable, Union

import torch
from torch import Tensor, nn

from ctflows.continuous.matching import FlowMatching
from ctflows.core.stats import regularization_terms
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


class TrainingLoss(nn.Module):
    """The full training loss of one batch as a module, so that DDP can wrap it: ``(x, c) -> (loss, nll, terms)``.

    loss = objective(flow, x, c) + Σ_name w_name · term_name, the terms being the regularizers the layers
    reported in that same forward pass (likelihood objective only).
    """

    def __init__(self, flow: nn.Module, objective: Objective, weights: dict[str, float]) -> None:
        super().__init__()
        self.flow, self.objective, self.weights = flow, objective, dict(weights)
        self.likelihood = isinstance(objective, MaximumLikelihood)

    def forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        main, nll = self.objective(self.flow, x, context)
        terms = regularization_terms(self.flow) if self.likelihood else {}
        missing = sorted(self.weights.keys() - terms.keys())
        if missing:
            reported = sorted(terms) or "none"
            raise ConfigurationError(
                f"fit: regularization names {missing} but no layer reported such a term (reported: {reported}). "
                "Continuous layers report a term only when built with it, e.g. CNF(..., regularization=('kinetic_energy',))."
            )
        loss = main + sum((w * terms[name] for name, w in self.weights.items()), torch.zeros_like(main))
        return loss, nll, terms
