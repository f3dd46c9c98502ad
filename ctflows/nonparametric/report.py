"""What a fitting procedure did, and the fitted model cut back to its first k steps.

Both procedures grow a chain ``[prefix layers] + k × [layers of one step]``; the report records the mean
log-likelihood L = mean[log|det J(x)| + log N(φ(x))] on the training and held-out points after 0, 1, … steps,
so held-out L per step (the stopping rule's input) and KL-versus-steps curves need no refitting.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ctflows.core.counts import whole_setting
from ctflows.core.flow import Flow
from ctflows.core.transform import Chain
from ctflows.errors import ConfigurationError


@dataclass
class FitReport:
    """The record of one :func:`fit_dual_ascent` or :func:`fit_gaussianization` run.

    Attributes:
        method: ``"dual_ascent"`` or ``"gaussianization"``.
        train: mean log-likelihood (nats per point) of the training points after 0, 1, … steps.
        validation: the same on the held-out points; ``validation[k]`` decides the stopping rule.
        steps: steps kept, ``argmax_k validation[k]`` (the chain is cut back to it).
        stopped: ``"patience"`` (held-out L stopped improving) or ``"max_steps"``.
        prefix_layers: layers before the first step (the whitening map, or the first marginal map).
        layers_per_step: layers one step adds (1 radial map; or a rotation and a marginal map).
        seconds: wall-clock time of the fit.
        extra: method-specific numbers per step (e.g. the dual ascent's ``beta``).
    """

    method: str
    train: list[float] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)
    steps: int = 0
    stopped: str = "max_steps"
    prefix_layers: int = 0
    layers_per_step: int = 1
    seconds: float = 0.0
    extra: dict[str, list[float]] = field(default_factory=dict)

    def record(self, train: float, validation: float) -> float:
        """Append the mean log-likelihoods after one more step; returns ``validation``."""
        self.train.append(train)
        self.validation.append(validation)
        return validation

    @property
    def best_validation(self) -> float:
        """Held-out mean log-likelihood of the kept model."""
        return self.validation[self.steps]


def truncate(flow: Flow, steps: int) -> Flow:
    """The fitted ``flow`` with only its first ``steps`` steps (0: just the prefix), sharing its layers.

    Uses ``flow.report`` (a :class:`FitReport`) to know how many layers a step has.
    """
    report = getattr(flow, "report", None)
    if not isinstance(report, FitReport):
        raise ConfigurationError("truncate: the flow has no FitReport; pass a flow from fit_dual_ascent or fit_gaussianization")
    count = whole_setting("truncate", "steps", steps, f"an int in [0, {report.steps}]", lambda v: 0 <= v <= report.steps)
    layers = list(flow.transform.layers)[: report.prefix_layers + count * report.layers_per_step]
    return Flow(Chain(layers), flow.base).eval()
