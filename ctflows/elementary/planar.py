"""Planar flow (Rezende & Mohamed 2015): one tanh ridge along w.

    forward (data -> base, analytic):  z = x + û tanh(wᵀx + b),   log|det J| = log(1 + wᵀû · tanh'(wᵀx + b))
    û = u + (m(wᵀu) - wᵀu) w / ‖w‖²,  m(a) = -1 + softplus(a)  so that  wᵀû = m(wᵀu) > -1 (invertible)

The inverse has no closed form. Projecting onto w reduces it to one scalar equation per sample,
a + c tanh(a) = wᵀz + b with a = wᵀx + b and c = wᵀû > -1, whose left side is strictly increasing; it is
solved by safeguarded Newton steps (bisection of the bracket |a - (wᵀz + b)| <= |c| when Newton is slow or
leaves it) to a relative step of ``tolerance``, then x = z - û tanh(a).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ctflows.core.counts import positive_count, real_setting
from ctflows.core.tolerance import solver_tolerance
from ctflows.core.transform import Transform
from ctflows.errors import SolverError

DEFAULT_TOLERANCE = {torch.float64: 1e-13, torch.float32: 1e-6}


class Planar(Transform):
    """``z = x + û tanh(wᵀx + b)``; shapes ``[B, D] -> [B, D]``. Forward analytic, inverse numerical.

    Args:
        features: D.
        tolerance: a sample's root is final once its Newton/bisection step is below ``tolerance · (1 + |a|)``;
            the inverse stops when every sample's is (default 1e-13 in float64, 1e-6 in float32).
        max_iterations: the inverse raises :class:`~ctflows.errors.SolverError` past this many steps.

    Starts as the identity (û = 0: u = log(e - 1) w / ‖w‖² gives m(wᵀu) = 0). ``stats["iterations"]``
    is the number of root-finding steps of the last inverse.
    """

    def __init__(self, features: int, *, tolerance: float | None = None, max_iterations: int = 100) -> None:
        super().__init__()
        features = positive_count("Planar", "features", features)
        self.event_shape = (features,)
        if tolerance is not None:  # a negative or NaN one can never be met: the inverse would blame convergence
            want = "a number >= 0, e.g. 1e-10 (or None: per dtype)"
            tolerance = real_setting("Planar", "tolerance", tolerance, want, lambda t: t >= 0)
        self.tolerance, self.max_iterations = tolerance, positive_count("Planar", "max_iterations", max_iterations)
        w = torch.randn(features) / math.sqrt(features)
        self.w = nn.Parameter(w)
        self.u = nn.Parameter(math.log(math.e - 1) * w / w.square().sum())
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> Tensor:
        """û ``[D]``, the constrained u with wᵀû = -1 + softplus(wᵀu) > -1."""
        return self._constrained()[0]

    def _constrained(self) -> tuple[Tensor, Tensor]:
        """``(û [D], 1 + wᵀû)``, the second as softplus(wᵀu) (exact, no cancellation near wᵀû = -1)."""
        wu = self.w @ self.u
        softplus = F.softplus(wu)
        raw_w_sq = self.w.square().sum()
        # tiny floor: w = 0 gives û = u, and the map is a translation (1 + wᵀû = 1, not softplus(0)). Below the floor
        # (‖w‖² subnormal, or 0) wᵀû = wᵀu + (softplus - 1 - wᵀu)·‖w‖²/tiny, not softplus - 1: form 1 + wᵀû from û itself.
        tiny = torch.finfo(self.w.dtype).tiny
        u_hat = self.u + (softplus - 1 - wu) * self.w / raw_w_sq.clamp_min(tiny)
        one_plus_c = torch.where(raw_w_sq >= tiny, softplus, 1 + self.w @ u_hat)
        return u_hat, one_plus_c

    @staticmethod
    def _slope(h: Tensor, one_plus_c: Tensor) -> Tensor:
        # dφ/da = 1 + wᵀû tanh'(a) = tanh² + (1 + wᵀû)(1 - tanh²): a sum of non-negative terms, so it
        # stays positive where the literal form 1 + (wᵀû)(1 - tanh²) rounds to zero or below as wᵀû -> -1.
        return h.square() + one_plus_c * (1 - h.square())

    def _forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        u, one_plus_c = self._constrained()
        h = torch.tanh(x @ self.w + self.b)
        self.stats = {}
        return x + h[:, None] * u, torch.log(self._slope(h, one_plus_c))

    def _inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        u, one_plus_c = self._constrained()
        c = self.w @ u  # wᵀû as the map applies it (equal to one_plus_c - 1 up to rounding)
        r = z @ self.w + self.b
        a = self._solve(r, c, one_plus_c)
        # One differentiable Newton step at the (detached) root: it moves a by ~0 but carries the exact
        # implicit-function gradient da = (dr - tanh(a) dc) / φ'(a).
        h = torch.tanh(a)
        a = a - (a + c * h - r) / self._slope(h, one_plus_c)
        h = torch.tanh(a)
        return z - h[:, None] * u, -torch.log(self._slope(h, one_plus_c))

    @torch.no_grad()
    def _solve(self, r: Tensor, c: Tensor, one_plus_c: Tensor) -> Tensor:
        """Root of φ(a) = a + c tanh(a) - r per sample (``r [B]``) by safeguarded Newton.

        A Newton step is taken unless it would leave the bracket or is longer than half the step before
        last; then the bracket is bisected (the rule of Numerical Recipes' ``rtsafe``). So steps shrink at
        least as fast as bisection's, and Newton's quadratic convergence takes over near the root. A Newton step
        landing on a bracket end counts as inside (as in ``rtsafe``): where tanh saturates, the root is the end
        r - c itself. Each sample stops once its own step is below the tolerance: left to iterate with its batch,
        a converged one would be bisected off its root (its far bracket end is still r ± |c|) and start over.
        """
        tol = self.tolerance if self.tolerance is not None else solver_tolerance(r.dtype, DEFAULT_TOLERANCE)
        r, c, one_plus_c = r.detach(), c.detach(), one_plus_c.detach()
        # φ(lo) <= 0 <= φ(hi) since |c tanh| <= |c|; widened by a few ulps so that Newton's rounded landing on the
        # saturated root r - c is inside it
        slack = 4 * torch.finfo(r.dtype).eps * (r.abs() + c.abs())
        lo, hi = r - c.abs() - slack, r + c.abs() + slack
        a = r.clone()
        step, older = hi - lo, hi - lo  # the last step and the one before it
        done = torch.zeros_like(r, dtype=torch.bool)  # converged samples stay put while the others go on
        for iteration in range(1, self.max_iterations + 1):
            h = torch.tanh(a)
            phi = a + c * h - r
            lo = torch.where(phi <= 0, a, lo)
            hi = torch.where(phi >= 0, a, hi)
            newton = a - phi / self._slope(h, one_plus_c)
            bisect = ~((newton >= lo) & (newton <= hi)) | ((newton - a).abs() > older.abs() / 2)
            new = torch.where(done, a, torch.where(bisect, (lo + hi) / 2, newton))
            step, older = new - a, step
            relative = step.abs() / (1 + a.abs())
            done = done | (relative <= tol)
            a = new
            if bool(done.all()):
                self.stats = {"iterations": iteration}
                return a
        raise SolverError(
            f"Planar: the inverse did not converge to tolerance {tol:g} in {self.max_iterations} iterations "
            f"(last relative step {float(relative.max()):.3g}); raise max_iterations or the tolerance"
        )


__all__ = ["Planar"]
