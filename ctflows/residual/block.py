"""The invertible residual block (i-ResNet, Behrmann et al. 2019; Residual Flows, Chen et al. 2019).

    forward (data -> base):  z = x + g(x),           log|det ∂z/∂x| = log det(I + J_g(x))
    inverse:                 x = z - g(x) by fixed-point iteration;  log-det -log det(I + J_g(x))

g is a :class:`LipschitzMLP` with Lip(g) ≤ c^L < 1, which makes the map invertible and the log-det
series converge. The log-det is computed by one of the estimators of :mod:`ctflows.residual.logdet` /
:mod:`ctflows.residual.roulette`, chosen separately for training and evaluation.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import Tensor

from ctflows.continuous.divergence import sample_noise
from ctflows.core.counts import optional_count, positive_count, widths
from ctflows.core.transform import Transform
from ctflows.errors import ConfigurationError
from ctflows.residual.branch import LipschitzMLP
from ctflows.residual.fixed_point import check_settings, fixed_point_inverse
from ctflows.residual.logdet import exact_logdet, power_series_logdet, resolve_logdet
from ctflows.residual.roulette import Truncation, russian_roulette_logdet
from ctflows.residual.spectral_norm import cached_weights


class ResidualBlock(Transform):
    """``x [B, D] -> z = x + g(x, context) [B, D]`` with its log-det, and the inverse by fixed-point iteration.

    Args:
        features: D. hidden: widths of g's hidden layers. context_features: width of an optional context.
        coefficient: c in (0, 1), the spectral-norm bound of each of g's linear layers (Lip(g) ≤ c^L).
            Smaller c: faster inverse and log-det series, less expressive block.
        activation: ``lipswish`` (default), ``elu``, ``tanh`` or ``softplus``.
        logdet: estimator in ``train()`` mode: ``"exact"``, ``"power_series"`` (biased, i-ResNet),
            ``"russian_roulette"`` (unbiased, Neumann gradient, Residual Flows) or ``"auto"`` (exact for
            D <= 8, else russian_roulette).
        eval_logdet: the same choice in ``eval()`` mode; ``"auto"`` is exact for D <= 8, else
            russian_roulette with ``eval_terms`` terms always computed (unbiased, little roulette variance).
        terms: power-series terms in training. eval_terms: power-series terms in eval, or the terms the
            roulette always computes in eval.
        truncation: the random number of terms of the roulette in training (default: 2 terms, then a
            geometric tail with mean 1, as in Chen et al.).
        noise: Hutchinson probe, ``"rademacher"`` or ``"gaussian"``, one per sample per call.
        tolerance, max_iterations: of the fixed-point inverse (tolerance per dtype by default: 1e-12 in
            float64, 1e-6 in float32, relative to 1 + |x|).
        power_iterations: spectral-norm power iterations per forward call in ``train()`` mode (see
            :class:`SpectralLinear`). Each such call moves g a little, so in training the inverse undoes the
            last forward call (it reuses that call's normalisation), while a forward after an inverse does
            not reproduce its input exactly; in ``eval()`` mode both directions are exact.

    Stats: ``logdet`` (estimator used), ``logdet_exact``, ``logdet_terms`` (vector-Jacobian products of
    the series, 0 for exact) and, after an inverse, ``iterations`` and ``residual`` (the last relative step).
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64),
        *,
        context_features: int | None = None,
        coefficient: float = 0.97,
        activation: str = "lipswish",
        logdet: str = "auto",
        eval_logdet: str = "auto",
        terms: int = 10,
        eval_terms: int = 20,
        truncation: Truncation = Truncation(),
        noise: str = "rademacher",
        tolerance: float | None = None,
        max_iterations: int = 1000,
        power_iterations: int = 5,
    ) -> None:
        super().__init__()
        self.event_shape = (features,)
        self.context_features = optional_count(type(self).__name__, "context_features", context_features)
        self.logdet = resolve_logdet(logdet, features)
        self.eval_logdet = resolve_logdet(eval_logdet, features)
        owner = type(self).__name__
        terms, eval_terms = (positive_count(owner, name, n) for name, n in (("terms", terms), ("eval_terms", eval_terms)))
        tolerance, max_iterations = check_settings(owner, tolerance, max_iterations)
        if noise not in ("rademacher", "gaussian"):
            raise ConfigurationError(f"ResidualBlock: noise {noise!r} is not 'rademacher' or 'gaussian'")
        if not isinstance(truncation, Truncation):  # else an AttributeError at the first roulette estimate in training
            raise ConfigurationError(
                f"ResidualBlock: truncation must be a ctflows.residual.Truncation, e.g. Truncation('geometric'), got {truncation!r}"
            )
        self.terms, self.eval_terms, self.truncation, self.noise = terms, eval_terms, truncation, noise
        self.tolerance, self.max_iterations = tolerance, max_iterations
        widths(owner, hidden)  # else refused by the inner MLP, under its name
        self.branch = LipschitzMLP(
            features, hidden, context_features=context_features, coefficient=coefficient,
            activation=activation, iterations=power_iterations,
        )

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self._map_and_logdet(x, context)

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        # One spectral normalisation for all the iterations, and in training the one the last forward call
        # used: advancing the power iteration here would invert a slightly different map.
        with cached_weights(self.branch, advance=False):
            x, iterations, residual = fixed_point_inverse(
                lambda v: self.branch(v, context), z, tolerance=self.tolerance, max_iterations=self.max_iterations,
                owner=type(self).__name__, lipschitz_bound=self.branch.lipschitz_bound,
            )
            _, logdet = self._map_and_logdet(x, context)
        self.stats.update(iterations=iterations, residual=residual)
        return x, -logdet

    def _map_and_logdet(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(x + g(x), log det(I + J_g(x)))`` with the estimator of the current mode; sets ``stats``."""
        name = self.logdet if self.training else self.eval_logdet
        differentiable = torch.is_grad_enabled()
        with torch.enable_grad():  # the estimators need J_g even under no_grad (evaluation, sampling)
            # A fresh node to differentiate against: gradients taken w.r.t. it stop there and never reach
            # hooks on x (the inverse puts one on its output, which must only see the final backward pass).
            x_in = x.view_as(x) if x.requires_grad else x.detach().requires_grad_()
            gx = self.branch(x_in, context)
            z = x_in + gx if differentiable else (x_in + gx).detach()
            logdet, terms = self._estimate(name, gx, x_in, differentiable)
        self.stats = {"logdet": name, "logdet_exact": name == "exact", "logdet_terms": terms}
        return z, logdet if differentiable else logdet.detach()

    def _estimate(self, name: str, gx: Tensor, x: Tensor, differentiable: bool) -> tuple[Tensor, int]:
        if name == "exact":
            return exact_logdet(gx, x, create_graph=differentiable), 0
        noise = sample_noise(x, self.noise)
        if name == "power_series":
            n = self.terms if self.training else self.eval_terms
            return power_series_logdet(gx, x, noise, n, create_graph=differentiable), n
        truncation = self.truncation if self.training else dataclasses.replace(self.truncation, min_terms=self.eval_terms)
        n = truncation.sample()
        return russian_roulette_logdet(gx, x, noise, truncation, n, neumann_gradient=differentiable), n
