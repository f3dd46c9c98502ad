"""Small stand-ins for the training tests: a Gaussian toy density and an elementwise affine layer.

Kept here (not in ctflows) so the tests depend on nothing but ctflows.core and ctflows.training.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ctflows.core import Flow, StandardNormal, Transform


class CorrelatedGaussian:
    """N(mean, cov) on R^2 with exact ``sample`` and ``log_prob``, in the toy-density protocol."""

    name = "correlated_gaussian"
    dim = 2

    def __init__(self, mean=(1.0, -0.5), cov=((2.0, 0.6), (0.6, 0.5))) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float64)
        self.cov = torch.tensor(cov, dtype=torch.float64)
        self.chol = torch.linalg.cholesky(self.cov)

    def sample(self, n: int, generator=None, dtype=torch.float32, device=None) -> Tensor:
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.mean + eps @ self.chol.T).to(dtype=dtype, device=device)

    def log_prob(self, x: Tensor) -> Tensor:
        dist = torch.distributions.MultivariateNormal(self.mean, self.cov)
        return dist.log_prob(x.double()).to(x.dtype)

    def entropy(self) -> float:
        return 0.5 * float(torch.logdet(2 * math.pi * math.e * self.cov))

    def kl_to_diagonal(self, loc: Tensor, scale: Tensor) -> float:
        """KL(N(mean, cov) ‖ N(loc, diag scale²)), the closed form for Gaussians."""
        loc, var = loc.double(), scale.double() ** 2
        diff = loc - self.mean
        trace = float((torch.diagonal(self.cov) / var).sum())
        return 0.5 * (trace + float((diff**2 / var).sum()) - self.dim + float(var.log().sum()) - float(torch.logdet(self.cov)))


class ElementwiseAffine(Transform):
    """z = (x − loc(c)) · exp(−log_scale), log|det| = −Σ log_scale; loc(c) = loc + c Wᵀ when conditional."""

    def __init__(self, features: int, context_features: int | None = None) -> None:
        super().__init__()
        self.event_shape = (features,)
        self.context_features = context_features
        self.loc = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        if context_features is not None:
            self.weight = nn.Parameter(torch.zeros(features, context_features))

    def _shift(self, context: Tensor | None) -> Tensor:
        return self.loc if context is None or self.context_features is None else self.loc + context @ self.weight.T

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return (x - self._shift(context)) * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(x.shape[0])

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return z * torch.exp(self.log_scale) + self._shift(context), self.log_scale.sum().expand(z.shape[0])


class Penalized(ElementwiseAffine):
    """Reports ``penalty = ‖loc‖²`` as a regularization term and a fake NFE count on each forward."""

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        self.stats = {"regularization": {"penalty": (self.loc**2).sum()}, "nfe_forward": 3}
        return super()._forward(x, context)


class Estimated(ElementwiseAffine):
    """Says its log-det was estimated (stats convention), as a Hutchinson-trace layer would."""

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        self.stats = {"logdet_exact": False}
        return super()._forward(x, context)


class Exploding(ElementwiseAffine):
    """Returns a NaN log-det, as a diverged layer would."""

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        z, logdet = super()._forward(x, context)
        return z, logdet * math.nan


class LazyAffine(Transform):
    """Creates its parameter on the first call, so an optimizer made before that call would miss it."""

    def __init__(self) -> None:
        super().__init__()
        self.event_shape = (2,)
        self.loc: nn.Parameter | None = None

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.loc is None:
            self.loc = nn.Parameter(torch.zeros(x.shape[1], dtype=x.dtype, device=x.device))
        return x - self.loc, x.new_zeros(x.shape[0])

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return z + self.loc, z.new_zeros(z.shape[0])


def affine_flow(layer_cls=ElementwiseAffine, features: int = 2, context_features: int | None = None) -> Flow:
    """A one-layer flow ``Flow(layer, StandardNormal)``: q = N(loc, diag exp(2 log_scale))."""
    return Flow(layer_cls(features, context_features), StandardNormal(features))


class Flaky(ElementwiseAffine):
    """Returns a NaN log-det on the calls numbered in ``bad_calls`` (1-based, counting every forward)."""

    def __init__(self, features: int, bad_calls: set[int]) -> None:
        super().__init__(features)
        self.bad_calls, self.calls = set(bad_calls), 0

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        self.calls += 1
        z, logdet = super()._forward(x, context)
        return z, logdet * math.nan if self.calls in self.bad_calls else logdet
