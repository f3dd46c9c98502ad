"""Log-likelihood of a flow with estimated log-dets, reported with its Monte Carlo standard error.

    log p(x) ≈ (1/K) Σ_k log p̂_k(x),    SE = sd_k(log p̂_k(x)) / √K

Each of the K probes is one evaluation with fresh Hutchinson noise (Grathwohl et al., FFJORD, 2019 report
test likelihoods this way when D is too large for the exact trace). When every layer reports
``stats["logdet_exact"]`` True, one evaluation suffices and the standard error is zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ctflows.core.counts import positive_count
from ctflows.core.stats import layer_stats
from ctflows.errors import ConfigurationError


@dataclass
class LogProbEstimate:
    """Per-probe log-densities ``[K, B]`` and whether they are exact (then K = 1)."""

    per_probe: Tensor
    exact: bool

    @property
    def num_probes(self) -> int:
        return self.per_probe.shape[0]

    @property
    def log_prob(self) -> Tensor:
        """Mean over probes: ``[B]``."""
        return self.per_probe.mean(dim=0)

    @property
    def stderr(self) -> Tensor:
        """Standard error of :attr:`log_prob` across probes: ``[B]`` (zeros when exact; NaN, unknown, from one probe)."""
        return _probe_stderr(self.per_probe, self.exact)

    def batch_mean(self) -> tuple[Tensor, Tensor]:
        """Mean log-density over the batch and its standard error across probes (scalars, the error as :attr:`stderr`)."""
        means = self.per_probe.mean(dim=1, keepdim=True)
        return means.mean(), _probe_stderr(means, self.exact)[0]


def _probe_stderr(per_probe: Tensor, exact: bool) -> Tensor:
    """``[K, B] -> [B]``: the standard error of the mean over K probes; 0 when exact, NaN for one estimated probe."""
    if exact:
        return torch.zeros_like(per_probe[0])
    if per_probe.shape[0] < 2:
        return torch.full_like(per_probe[0], math.nan)
    return per_probe.std(dim=0) / math.sqrt(per_probe.shape[0])


def log_prob_is_exact(model: nn.Module) -> bool:
    """Whether the last call of every layer of ``model`` computed its log-det exactly (layers that do not say are)."""
    return all(s.get("logdet_exact", True) for s in layer_stats(model).values())


def estimate_log_prob(flow: nn.Module, x: Tensor, context: Tensor | None = None, *, num_probes: int = 8) -> LogProbEstimate:
    """Evaluate ``flow.log_prob(x, context)`` up to ``num_probes`` times: ``x [B, *event] -> LogProbEstimate``.

    Uses the layers' current mode (call ``flow.eval()`` first for evaluation settings) and the caller's
    grad mode; wrap it in ``torch.no_grad()`` for test-set evaluation.
    """
    num_probes = positive_count("estimate_log_prob", "num_probes", num_probes)
    if not callable(getattr(flow, "log_prob", None)):
        raise ConfigurationError(f"estimate_log_prob: flow must be a model with a log_prob method (a Flow), got {type(flow).__name__}")
    first = flow.log_prob(x, context)
    if log_prob_is_exact(flow):
        return LogProbEstimate(first.unsqueeze(0), exact=True)
    probes = [first] + [flow.log_prob(x, context) for _ in range(num_probes - 1)]
    return LogProbEstimate(torch.stack(probes), exact=False)
