"""Builder for FFJORD-style continuous flows on vectors (Grathwohl et al. 2019).

One or more ``CNF`` blocks, each with a concat-squash MLP velocity field. The defaults follow FFJORD's toy
configuration in size and solver (one block, three hidden layers of 64, dopri5, atol = rtol = 1e-5, adjoint)
but use softplus where it uses tanh, and a fixed T = 1 where it learns T from 0.5;
``benchmarks/cnf_common.FFJORD_TOY_MODEL`` is its configuration exactly.
"""
from __future__ import annotations

from typing import Any, Sequence

from ctflows.continuous import CNF, TimeMLP
from ctflows.core import Chain, Flow, StandardNormal
from ctflows.core.counts import check_seed
from ctflows.models.builder_arguments import check_blocks, check_features
from ctflows.models.seeding import initialised_from


def cnf(
    features: int,
    hidden: Sequence[int] = (64, 64, 64),
    *,
    blocks: int = 1,
    context_features: int | None = None,
    activation: str = "softplus",
    layer: str = "concatsquash",
    seed: int | None = None,
    **cnf_kwargs: Any,
) -> Flow:
    """A continuous normalizing flow: ``blocks`` CNF layers to a standard normal.

    Shapes: data ``[B, features]``; context ``[B, context_features]`` if given. ``cnf_kwargs`` go to every
    :class:`~ctflows.continuous.CNF` (``method``, ``atol``, ``rtol``, ``adjoint``, ``divergence``,
    ``regularization``, ...). ``seed``, when given, fixes the initial weights (drawn in a forked RNG, leaving
    torch's global one as it was), as in the other builders.
    """
    features = check_features("cnf", features)
    check_blocks("cnf", blocks)
    seed = check_seed("cnf", seed)
    with initialised_from(seed):
        layers = [
            CNF(
                TimeMLP(features, hidden, activation=activation, context_features=context_features, layer=layer),
                features,
                **cnf_kwargs,
            )
            for _ in range(blocks)
        ]
    return Flow(Chain(*layers), StandardNormal(features))
