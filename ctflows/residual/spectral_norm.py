"""Spectral normalisation of a linear layer by power iteration, scaled to a coefficient c < 1.

    σ̂ = uᵀ W v  (u, v from power iteration),     W̃ = W / max(1, σ̂ / c),     so ‖W̃‖₂ ≈ min(‖W‖₂, c)

Miyato et al. 2018 divide by σ̂ outright; i-ResNet (Behrmann et al. 2019) and Residual Flows (Chen et
al. 2019) divide by max(1, σ̂/c) instead, which is what we do: a layer whose norm is already below c is
left alone, so the constraint only bites where it must, and the branch can still learn to be small.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ctflows.core.counts import positive_count, real_setting
from ctflows.errors import ConfigurationError


def check_coefficient(coefficient: float, owner: str) -> float:
    """``coefficient`` as a float if ``0 < c < 1``, else a :class:`ConfigurationError` (c >= 1 breaks invertibility)."""
    return real_setting(
        owner, "coefficient", coefficient,
        "a number in (0, 1), e.g. 0.97 (each layer's Lipschitz bound; with c >= 1 x + g(x) need not be invertible)",
        lambda c: 0.0 < c < 1.0,
    )


def _unit(new: Tensor, old: Tensor) -> Tensor:
    # A zero weight (or u in its null space) would make the vector 0/0; keeping the old one lets the
    # iteration recover once the weight moves, where normalising 0 would leave u = 0 for good.
    norm = new.norm()
    return torch.where(norm > 1e-30, new / norm.clamp_min(1e-30), old)


class SpectralLinear(nn.Module):
    """A linear map ``[B, in] -> [B, out]`` whose weight is scaled to spectral norm at most ``coefficient``.

    Args:
        linear: the ``nn.Linear`` whose weight and bias this layer takes over (e.g. one of an MLP's).
        coefficient: c in (0, 1), the bound on ‖W̃‖₂.
        iterations: power iterations per forward call in ``train()`` mode (an inverse reuses the last one's,
            see :meth:`normalized_weight`); u and v (buffers, so they are saved
            and moved with the model) carry over between steps, so a few iterations track σ as W drifts
            (5, as in Chen et al.'s toy experiments).
        eval_iterations: at most this many in ``eval()`` mode, from the stored u, v (not written back, so
            every eval call computes the same W̃); stops early once σ̂ changes by < ``eval_rtol`` relatively
            over 10 iterations (so at least 20 are run).

    Power iteration approaches σ from below, so in training the bound is approximate: when W's two
    largest singular values are nearly tied and swap, the tracked vectors need dozens of iterations to
    follow, and ‖W̃‖₂ overshoots c meanwhile (measured over 200 steps of ``resflow`` on two moons: at most
    16% with 1 iteration per step, 8% with 5, 5% with 10). In eval it is tight to ``eval_rtol``
    (tests/residual/test_lipschitz.py). The exact log-det does not rely on the bound; the series do.
    """

    def __init__(
        self,
        linear: nn.Linear,
        coefficient: float = 0.97,
        *,
        iterations: int = 5,
        eval_iterations: int = 200,
        eval_rtol: float = 1e-7,
    ) -> None:
        super().__init__()
        if not isinstance(linear, nn.Linear):  # it takes over a [out, in] weight and its bias
            raise ConfigurationError(f"SpectralLinear: linear must be an nn.Linear, got {type(linear).__name__}")
        self.coefficient = check_coefficient(coefficient, "SpectralLinear")
        # At least one: with none, σ̂ would be read from the buffers themselves, which the next call overwrites
        # in place while autograd still holds them, and σ̂ would never follow W.
        self.iterations = positive_count("SpectralLinear", "iterations", iterations)
        self.eval_iterations = positive_count("SpectralLinear", "eval_iterations", eval_iterations)
        # NaN would never stop the eval iteration early; a negative tolerance neither.
        self.eval_rtol = real_setting("SpectralLinear", "eval_rtol", eval_rtol, "a number >= 0, e.g. 1e-7", lambda r: r >= 0)
        self.weight = linear.weight
        self.bias = linear.bias
        out_features, in_features = self.weight.shape
        w = self.weight.detach()
        self.register_buffer("u", F.normalize(torch.randn(out_features, dtype=w.dtype, device=w.device), dim=0))
        self.register_buffer("v", F.normalize(torch.randn(in_features, dtype=w.dtype, device=w.device), dim=0))
        self._cached: Tensor | None = None
        self._advanced_at: int | None = None  # W's version counter when the power iteration last advanced
        # Start from converged vectors: after one iteration from random ones, σ̂ of a default-initialised
        # 64 × 64 weight is 1.39 times too small on average (20 draws), and the first steps would use it.
        u, v = self._power_iteration(w, self.u, self.v, 500, 1e-10)
        self.u.copy_(u)
        self.v.copy_(v)

    @torch.no_grad()
    def _power_iteration(self, w: Tensor, u: Tensor, v: Tensor, n: int, rtol: float | None) -> tuple[Tensor, Tensor]:
        # With rtol: run in chunks of 10 and stop once σ̂ moved by < rtol over a chunk. A chunk, not one
        # step, because while u still lies mostly along a former top direction σ̂ creeps up slowly before
        # it jumps; and one host sync per chunk rather than per step.
        sigma = None
        for i in range(1, n + 1):
            v = _unit(w.T @ u, v)
            u = _unit(w @ v, u)
            if rtol is not None and (i % 10 == 0 or i == n):
                new = float(u @ w @ v)
                if sigma is not None and abs(new - sigma) <= rtol * abs(new):
                    break
                sigma = new
        return u, v

    def normalized_weight(self, *, advance: bool = True, store: bool = True) -> Tensor:
        """W̃ = W / max(1, σ̂/c) ``[out, in]``, differentiable in W (σ̂ too: u and v are held constant).

        In ``train()`` mode ``advance=False`` reuses the stored u, v without iterating, which gives the W̃ of
        the last advancing call (what an inverse of that call needs) -- unless W has changed since (an
        optimizer step, a loaded state), in which case it advances after all, so that a layer used only in
        the inverse direction still tracks σ. ``store=False`` keeps the advanced u, v out of the buffers
        (a look that leaves the layer as it was).
        """
        w = self.weight
        if self.training and (advance or self._advanced_at != w._version):
            u, v = self._power_iteration(w, self.u, self.v, self.iterations, None)
            if store:
                with torch.no_grad():
                    self.u.copy_(u)
                    self.v.copy_(v)
                self._advanced_at = w._version
        elif self.training:
            # Copies: a later advancing call overwrites the buffers in place, and autograd keeps u, v.
            u, v = self.u.clone(), self.v.clone()
        else:
            u, v = self._power_iteration(w, self.u, self.v, self.eval_iterations, self.eval_rtol)
        sigma = u @ w @ v
        return w / torch.clamp(sigma / self.coefficient, min=1.0)

    def forward(self, x: Tensor) -> Tensor:
        weight = self._cached if self._cached is not None else self.normalized_weight()
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"in_features={in_features}, out_features={out_features}, coefficient={self.coefficient}"


@contextlib.contextmanager
def cached_weights(module: nn.Module, *, advance: bool = True) -> Iterator[None]:
    """Within the block, every :class:`SpectralLinear` in ``module`` uses one W̃ computed on entry.

    A fixed-point inverse calls the branch hundreds of times; without the cache each call would redo
    the power iteration. ``advance=False`` reuses the last training call's σ̂ (see
    :meth:`SpectralLinear.normalized_weight`). Re-entrant: an inner use leaves the outer cache in place.
    """
    fresh = [m for m in module.modules() if isinstance(m, SpectralLinear) and m._cached is None]
    try:
        for m in fresh:
            m._cached = m.normalized_weight(advance=advance)
        yield
    finally:
        for m in fresh:
            m._cached = None


def spectral_norms(module: nn.Module) -> list[Tensor]:
    """Exact ‖W̃‖₂ (largest singular value, by SVD) of every :class:`SpectralLinear` in ``module``.

    W̃ is the current mode's; in ``train()`` mode the last training call's, or, if W changed since (an
    optimizer step), the one the next training call will use. Looking never changes the layer: the power
    iteration's vectors are not stored, so a run that logs the norms trains exactly as one that does not.
    """
    with torch.no_grad():
        return [
            torch.linalg.matrix_norm(m.normalized_weight(advance=False, store=False), ord=2)
            for m in module.modules() if isinstance(m, SpectralLinear)
        ]
