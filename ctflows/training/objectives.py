"""Training objectives for ``fit``: each maps a batch to ``(loss, nll or None)``.

    maximum likelihood:  loss = −(1/B) Σ_b log q(x_b | c_b)
    flow matching:       loss = E‖v(t, x_t) − u_t‖²   (see :mod:`ctflows.continuous.matching`)
"""
from __future__ import annotations

import reprlib
from typing import Callable, Union

import torch
from torch import Tensor, nn

from ctflows.continuous.matching import FlowMatching
from ctflows.core.stats import regularization_terms
from ctflows.core.validation import check_call_signature
from ctflows.errors import ConfigurationError

Objective = Callable[[nn.Module, Tensor, "Tensor | None"], "tuple[Tensor, Tensor | None]"]


class MaximumLikelihood:
    """Mean negative log-likelihood of the batch (the default objective)."""

    name = "likelihood"

    def __repr__(self) -> str:
        return "MaximumLikelihood()"

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
    check_call_signature(objective, 3, f"fit: a custom objective is called as objective(flow, x, context) -> {RETURNS}")
    return objective


RETURNS = "(loss, nll or None), loss a scalar tensor with a graph to the parameters"


def checked_result(result: object) -> tuple[Tensor, Tensor | None]:
    """A custom objective's ``(loss, nll)``, or a ConfigurationError that says what it returned instead.

    Found at the first step, where the alternative is an unpacking error or autograd's "does not require grad".
    """
    problem = None
    if not (isinstance(result, tuple) and len(result) == 2):
        problem = _described(result)
    elif not isinstance(result[0], Tensor) or result[0].dim() != 0 or not result[0].is_floating_point():
        problem = f"a loss that is {_described(result[0])}"
    elif torch.is_grad_enabled() and not result[0].requires_grad:
        problem = "a loss with no graph to the parameters (computed under no_grad, detached, or a constant)"
    if problem is not None:
        raise ConfigurationError(f"fit: the custom objective must return {RETURNS}; it returned {problem}")
    return result  # type: ignore[return-value]


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
        result = self.objective(self.flow, x, context)
        main, nll = result if isinstance(self.objective, tuple(NAMED.values())) else checked_result(result)
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


def _described(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"{type(value).__name__} {reprlib.repr(value)}"
