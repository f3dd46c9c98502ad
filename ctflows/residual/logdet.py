"""log|det(I + J_g)| of a residual block x + g(x), exactly or by the power series (i-ResNet).

    exact:         slogdet(I + J_g), J_g from D batched vector-Jacobian products     cost ~ D backward passes
    power series:  log det(I + J) = Σ_{k≥1} (-1)^{k+1} tr(J^k) / k,    tr(J^k) ≈ εᵀ J^k ε  (Hutchinson)

The series converges when ‖J‖₂ ≤ Lip(g) < 1; cut after n terms its error is at most
Σ_{k>n} D·Lip^k / k ≤ D·Lip^{n+1} / ((n+1)(1 - Lip)) (Behrmann et al. 2019, Theorem 3), so the truncated
estimate is biased, by an amount that falls geometrically in n. The unbiased alternative is in
:mod:`ctflows.residual.roulette`. All estimators take ``gx = g(x)`` [B, D] and ``x`` [B, D], which must
be connected by autograd, and return ``[B]``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ctflows.continuous.divergence import AUTO_EXACT_MAX_FEATURES, check_noise, exact_divergence
from ctflows.core.counts import positive_count
from ctflows.errors import ConfigurationError

ESTIMATORS = ("exact", "power_series", "russian_roulette", "auto")


def resolve_logdet(name: str, features: int) -> str:
    """The estimator to run: ``name``, or for ``"auto"`` ``"exact"`` when ``features <= 8`` else ``"russian_roulette"``."""
    if name not in ESTIMATORS:
        raise ConfigurationError(f"log-det estimator {name!r} is not one of {ESTIMATORS}")
    if name == "auto":
        return "exact" if features <= AUTO_EXACT_MAX_FEATURES else "russian_roulette"
    return name


def exact_logdet(gx: Tensor, x: Tensor, *, create_graph: bool = False) -> Tensor:
    """``log|det(I + ∂g/∂x)|`` per sample ``[B]``, from the full Jacobian (no variance, no bias).

    D vector-Jacobian products in one batched backward pass (the CNF's exact divergence, which returns
    the Jacobian too). ``create_graph=True`` keeps the result differentiable for training; without it
    the graph of ``gx`` is freed, as nothing more will be taken from it.
    """
    _, jac = exact_divergence(gx, x, create_graph=create_graph, return_jacobian=True)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return torch.linalg.slogdet(eye + jac).logabsdet


def power_series_logdet(gx: Tensor, x: Tensor, noise: Tensor, terms: int, *, create_graph: bool = False) -> Tensor:
    """Σ_{k=1}^{terms} (-1)^{k+1}/k · εᵀ J^k ε per sample ``[B]``: Hutchinson on the truncated series.

    ε = ``noise`` [B, D] with E[εεᵀ] = I (:func:`ctflows.continuous.divergence.sample_noise`). Its mean
    over ε is the truncated series exactly (passing the basis vectors e_i as ``noise`` and summing
    over i gives it without noise). Cost: ``terms`` vector-Jacobian products; with ``create_graph``
    (training, as in i-ResNet) memory grows linearly in ``terms``.
    """
    terms = positive_count("power_series_logdet", "terms", terms)
    check_noise("power_series_logdet", noise, x)
    w, total = noise, torch.zeros_like(noise[:, 0])
    for k in range(1, terms + 1):
        (w,) = torch.autograd.grad(gx, x, w, create_graph=create_graph, retain_graph=True)  # wᵀ <- wᵀ J
        total = total + (-1) ** (k + 1) / k * (w * noise).sum(dim=-1)
    return total
