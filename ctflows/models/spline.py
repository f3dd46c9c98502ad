"""Builder for neural spline flows (Durkan et al. 2019): rational-quadratic spline couplings.

Each block is ``ActNorm -> mixing -> RQSplineCoupling``, as in :mod:`ctflows.models.discrete`; ActNorm
keeps what each spline sees roughly standardised, so most of it falls inside [-bound, bound].
"""
from __future__ import annotations

from typing import Sequence

from ctflows.core import Flow
from ctflows.coupling import RQSplineCoupling
from ctflows.models.discrete import _coupling_flow


def spline(
    features: int,
    blocks: int = 4,
    hidden: Sequence[int] = (64, 64),
    *,
    bins: int = 8,
    bound: float = 3.0,
    context_features: int | None = None,
    activation: str = "relu",
    mixing: str = "reverse",
    seed: int | None = None,
) -> Flow:
    """Neural spline flow: ``blocks`` RQ-spline couplings with ``bins`` bins on [-bound, bound].

    Shapes: data ``[B, features]``; context ``[B, context_features]`` if given. ``mixing`` is
    ``"reverse"``, ``"random"`` or ``"lu"`` (see :func:`ctflows.models.realnvp`); ``seed`` fixes the initial
    weights and random permutations. The flow starts as ActNorm layers around identity splines.
    """
    return _coupling_flow(
        "spline", RQSplineCoupling, features, blocks, hidden, context_features, activation, mixing, seed, bins=bins, bound=bound
    )


__all__ = ["spline"]
