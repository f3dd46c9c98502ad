"""The unbiased Russian-roulette log-det estimator and its Neumann-series gradient (Chen et al. 2019).

    log det(I + J) = E_{N, ε} [ Σ_{k=1}^{N} (-1)^{k+1} / (k · P(N ≥ k)) · εᵀ J^k ε ]                  (§3.1)
    ∂_θ log det(I + J) = E_{N, ε} [ Σ_{k=0}^{N-1} (-1)^k / P(N ≥ k+1) · εᵀ J^k (∂_θ J) ε ]            (§3.2)

Reweighting term k by 1 / P(N ≥ k) makes the randomly truncated series unbiased. The gradient follows
from ∂ log det(I + J) = tr((I + J)⁻¹ ∂J) with (I + J)⁻¹ = Σ_k (-J)^k, truncated the same way. It is
computed without backpropagating through the series (§3.3): the vector u = Σ_k c_k (Jᵀ)^k ε is built
with plain vector-Jacobian products, then one differentiable product uᵀ J ε carries the gradient; memory
stays that of one backward pass, whatever N. ε: Hutchinson probes with E[εεᵀ] = I.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ctflows.continuous.divergence import check_noise
from ctflows.core.counts import real_setting
from ctflows.errors import ConfigurationError

TRUNCATIONS = ("geometric", "poisson")


def _terms(owner: str, name: str, value: object) -> int:
    """A number of series terms, a whole number >= 0 (0 terms is a valid draw: the estimate is then 0)."""
    return int(real_setting(owner, name, value, "a whole number >= 0, e.g. 2", lambda n: n >= 0 and n.is_integer()))


@dataclass(frozen=True)
class Truncation:
    """The random number of series terms ``N = min_terms + M``, M geometric or Poisson with mean ``mean_extra``.

    The first ``min_terms`` terms are always computed (Chen et al. use 2); only the tail is left to
    chance. Variance: term k is at most D·Lip(g)^k / k and is weighted by 1 / P(N ≥ k). For the geometric
    tail P(M ≥ m) = q^m with q = mean_extra / (1 + mean_extra) (q = 0.5 for the default, as in the paper),
    so the variance is finite when Lip(g)² < q, and otherwise only when tr(J^k) falls faster than the
    bound. A Poisson tail falls factorially, so its weights grow factorially: still unbiased, but with
    infinite variance whenever tr(J^k) decays only geometrically; use it with a small Lip(g) or a
    large ``min_terms``.
    """

    kind: str = "geometric"
    mean_extra: float = 1.0
    min_terms: int = 2

    def __post_init__(self) -> None:
        if self.kind not in TRUNCATIONS:
            raise ConfigurationError(f"Truncation: kind {self.kind!r} is not one of {TRUNCATIONS}")
        # Set through object.__setattr__ (the dataclass is frozen) so that sample() returns an int number of terms.
        object.__setattr__(self, "min_terms", _terms("Truncation", "min_terms", self.min_terms))
        # An infinite mean would make sample() fail on a NaN draw.
        mean = real_setting("Truncation", "mean_extra", self.mean_extra, "a finite number > 0, e.g. 1.0", lambda m: m > 0)
        object.__setattr__(self, "mean_extra", mean)

    def sample(self, generator: torch.Generator | None = None) -> int:
        """One draw of N (a Python int: the loop over terms runs on the host)."""
        if self.kind == "geometric":
            q = self.mean_extra / (1 + self.mean_extra)
            u = 1.0 - float(torch.rand((), generator=generator, dtype=torch.float64))  # in (0, 1]
            extra = int(math.floor(math.log(u) / math.log(q)))  # P(extra >= m) = P(u <= q^m) = q^m
        else:
            extra = int(torch.poisson(torch.tensor(self.mean_extra, dtype=torch.float64), generator=generator))
        return self.min_terms + extra

    def survival(self, k: int) -> float:
        """P(N ≥ k)."""
        m = k - self.min_terms
        if m <= 0:
            return 1.0
        if self.kind == "geometric":
            return (self.mean_extra / (1 + self.mean_extra)) ** m
        # P(M ≥ m) = P(Gamma(m, 1) ≤ λ), the regularised lower incomplete gamma function: accurate far into the
        # tail, where 1 - CDF would cancel to 0 (and the weight to inf), and for any λ.
        return float(torch.special.gammainc(torch.tensor(float(m), dtype=torch.float64),
                                            torch.tensor(self.mean_extra, dtype=torch.float64)))

    @property
    def mean_terms(self) -> float:
        """E[N], the expected number of vector-Jacobian products per call."""
        return self.min_terms + self.mean_extra


def russian_roulette_logdet(
    gx: Tensor, x: Tensor, noise: Tensor, truncation: Truncation, n: int, *, neumann_gradient: bool = False
) -> Tensor:
    """The Russian-roulette estimate of ``log det(I + ∂g/∂x)`` per sample ``[B]`` for one draw ``n`` of N.

    ``gx = g(x)`` [B, D], ``x`` [B, D] connected by autograd; ``noise`` ε [B, D]; ``n`` from
    ``truncation.sample()`` (one draw shared by the batch, as in Chen et al.'s code: every sample's
    estimate is still unbiased). Cost: n vector-Jacobian products, plus one differentiable one when
    ``neumann_gradient``; then the returned value is the unbiased estimate and its gradient (in θ and
    in x) is the Neumann-series estimator above, not the derivative of the estimate itself.
    """
    if not isinstance(truncation, Truncation):
        raise ConfigurationError(f"russian_roulette_logdet: truncation must be a Truncation, got {truncation!r}")
    # A negative n would silently return 0 (no terms), a fractional one fail in range().
    n = _terms("russian_roulette_logdet", "n", n)
    check_noise("russian_roulette_logdet", noise, x)
    value = torch.zeros_like(noise[:, 0])
    neumann = torch.zeros_like(noise)
    w = noise
    for k in range(1, n + 1):
        weight = (-1) ** (k + 1) / truncation.survival(k)
        if neumann_gradient:
            neumann = neumann + weight * w  # += c_k (Jᵀ)^{k-1} ε
        (w,) = torch.autograd.grad(gx, x, w, retain_graph=True)  # (Jᵀ)^k ε, no graph: values only
        value = value + weight / k * (w * noise).sum(dim=-1)
    if not neumann_gradient or n == 0:
        return value
    (u_jac,) = torch.autograd.grad(gx, x, neumann, create_graph=True, retain_graph=True)
    surrogate = (u_jac * noise).sum(dim=-1)  # uᵀ J ε with u held fixed: its gradient is the Neumann estimate
    return value + (surrogate - surrogate.detach())
